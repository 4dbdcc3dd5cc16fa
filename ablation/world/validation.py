"""Argument checks shared by the world builders.

Workflow configs are user-edited, so bad sizes should fail fast with a message
naming the offending argument instead of surfacing as an obscure error later.
"""

from __future__ import annotations


def require_positive(**values: object) -> None:
    """Raise ValueError naming the first argument that is not a positive int."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def require_positive_number(**values: object) -> None:
    """Raise ValueError naming the first argument that is not a positive int or float."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")


def require_int(**values: object) -> None:
    """Raise ValueError naming the first argument that is not an int."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
