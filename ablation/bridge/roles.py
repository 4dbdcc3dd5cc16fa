"""Which run plays each role of seed 004's ablation plan (1a, 1b, 2a, …), and the checks on
``bridge.legacy`` and ``bridge.report`` that a schema cannot express.

A role's run is named in ``bridge.report.roles``; a legacy run that declares a role takes it.
Kept free of heavy imports: the Snakefile resolves roles while it parses.
"""

from __future__ import annotations

from collections import Counter


def role_runs(bridge: dict) -> dict[str, str | None]:
    """Role -> the run playing it (a bridge.runs or bridge.legacy name), None where nothing is named."""
    roles = dict(bridge["report"]["roles"])
    roles.update({entry["role"]: entry["name"] for entry in bridge["legacy"] if entry["role"] is not None})
    return roles


def reproductions(bridge: dict) -> dict[str, str]:
    """Legacy run -> the bridge run that re-runs it (``reproduced_by``), for the legacy runs that name one."""
    return {entry["name"]: entry["reproduced_by"] for entry in bridge["legacy"] if entry["reproduced_by"] is not None}


def run_descriptions(bridge: dict) -> dict[str, str]:
    """Run -> what it is, for every configured and legacy run; a run inherits no description from its base."""
    descriptions = {run: settings.get("description", "") for run, settings in bridge["runs"].items()}
    descriptions.update({entry["name"]: entry["description"] for entry in bridge["legacy"]})
    return descriptions


def _referenced_roles(report: dict) -> list[tuple[str, str]]:
    """(config key, role) for every role the ablation tables, expectations and claims name."""
    claims = report["claims"]
    referenced = [
        (f"bridge.report.ablations[{number}].roles", role)
        for number, ablation in enumerate(report["ablations"])
        for role in ablation["roles"]
    ]
    referenced += [(f"bridge.report.expected.{role}", role) for role in report["expected"]]
    referenced += [(f"bridge.report.claims.stability_fixes_work.{key}", claims["stability_fixes_work"][key]) for key in ("stable", "unstable")]
    referenced += [("bridge.report.claims.compression_tradeoff.roles", role) for role in claims["compression_tradeoff"]["roles"]]
    referenced.append(("bridge.report.claims.generalises_beyond_math.role", claims["generalises_beyond_math"]["role"]))
    return referenced


def report_problems(bridge: dict) -> list[str]:
    """Legacy names that clash, roles claimed twice or unknown, ablation tables named twice."""
    problems = []
    roles = bridge["report"]["roles"]
    legacy = bridge["legacy"]
    names = Counter(entry["name"] for entry in legacy)
    problems += [f"config key 'bridge.legacy': the name {name!r} is given {count} times" for name, count in names.items() if count > 1]
    problems += [
        f"config key 'bridge.legacy': {name!r} is also a bridge run (bridge.runs); a run has one name in reports"
        for name in names
        if name in bridge["runs"]
    ]
    claimed = Counter(entry["role"] for entry in legacy if entry["role"] is not None)
    for number, entry in enumerate(legacy):
        role = entry["role"]
        where = f"config key 'bridge.legacy[{number}].role'"
        rerun = entry["reproduced_by"]
        if rerun is not None and rerun not in bridge["runs"]:
            problems.append(f"config key 'bridge.legacy[{number}].reproduced_by': {rerun!r} is not a bridge run; "
                            f"configured: {', '.join(bridge['runs']) or 'none'}")  # fmt: skip
        if role is None:
            continue
        if role not in roles:
            problems.append(f"{where}: unknown role {role!r}; roles (bridge.report.roles): {', '.join(roles)}")
        elif claimed[role] > 1:
            problems.append(f"{where}: role {role!r} is taken by {claimed[role]} legacy runs")
        elif roles[role] in bridge["runs"] and roles[role] != entry["name"]:
            problems.append(f"{where}: role {role!r} is also played by bridge run {roles[role]!r} (bridge.report.roles.{role}); name one")
    problems += [
        f"config key '{key}': unknown role {role!r}; roles (bridge.report.roles): {', '.join(roles)}"
        for key, role in _referenced_roles(bridge["report"])
        if role not in roles
    ]
    tables = Counter(ablation["name"] for ablation in bridge["report"]["ablations"])
    problems += [f"config key 'bridge.report.ablations': the name {name!r} is given {count} times" for name, count in tables.items() if count > 1]
    return problems
