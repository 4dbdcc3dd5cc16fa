"""The study's vocabulary: mask modes, training masks and task sets.

Kept free of heavy imports, so the Snakefile can validate a config in a fraction of a second.
"""

MASK_MODES = ("causal", "prefill_bidir", "full_bidir")
TRAIN_MASKS = ("causal", "prefill_bidir")
REAL_TASKS = ("hellaswag", "piqa", "arc_easy", "arc_challenge", "winogrande")
TINY_TASKS = tuple(f"tiny_{task}" for task in REAL_TASKS)
# the original study's prompts and scorer on the same hub datasets (ablation/prefill/original/tasks)
ORIGINAL_TASKS = tuple(f"original_{task}" for task in REAL_TASKS)
TASK_SETS = {"real": REAL_TASKS, "tiny": TINY_TASKS, "original": ORIGINAL_TASKS}
# task sets whose datasets come from the hub (prefetched); the tiny world builds its own
HUB_TASK_SETS = ("real", "original")


def check_mask_mode(mode: str) -> str:
    """Return ``mode`` if it is a known mask mode, else raise naming the allowed ones."""
    if mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mode!r}; allowed: {', '.join(MASK_MODES)}")
    return mode


def check_train_mask(train_mask: str) -> str:
    if train_mask not in TRAIN_MASKS:
        raise ValueError(f"unknown train mask {train_mask!r}; allowed: {', '.join(TRAIN_MASKS)}")
    return train_mask


def resolve_tasks(task_set: str, tasks: list[str] | None = None) -> tuple[str, ...]:
    """The tasks to run: all of ``task_set``, or the named subset of it."""
    if task_set not in TASK_SETS:
        raise ValueError(f"unknown task set {task_set!r}; allowed: {', '.join(TASK_SETS)}")
    allowed = TASK_SETS[task_set]
    if not tasks:
        return allowed
    unknown = [task for task in tasks if task not in allowed]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)} for task set {task_set!r}; allowed: {', '.join(allowed)}")
    return tuple(tasks)


def hub_tasks(task_set: str, tasks: list[str] | None = None) -> tuple[str, ...]:
    """The tasks of a run whose datasets must be downloaded from the hub (none for the tiny world's)."""
    return resolve_tasks(task_set, tasks) if task_set in HUB_TASK_SETS else ()
