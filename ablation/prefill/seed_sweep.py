"""A seed sweep of the prefill-mask study: which seeds run, where each one's study lives, its config.

The config key ``seeds`` lists them. Each seed's study is the same workflow run on a copy of the
config with ``seed`` and ``world.seed`` set to that seed (a Snakemake module per seed, see the
Snakefile); the config's own study stays in ``results_dir`` and counts as the seed it was run with.
Kept free of heavy imports: the Snakefile calls it while it parses.
"""

from __future__ import annotations

import copy
from pathlib import Path

SEEDS_SUBDIR = "seeds"


def sweep_seeds(config: dict) -> list[int]:
    """The seeds of the sweep in config order; empty when the config runs one seed (``seeds`` null or one entry)."""
    seeds = config.get("seeds") or []
    return list(seeds) if len(seeds) > 1 else []


def is_own_seed(config: dict, seed: int) -> bool:
    """Whether the config's own study (in results_dir) already is ``seed``'s: same run seed and world seed."""
    return config["seed"] == seed and config["world"]["seed"] == seed


def seed_results_dir(config: dict, seed: int) -> Path:
    """Where ``seed``'s study writes: results_dir for the config's own seed, else results_dir/seeds/<seed>."""
    results = Path(config["results_dir"])
    return results if is_own_seed(config, seed) else results / SEEDS_SUBDIR / str(seed)


def seed_study_config(config: dict, seed: int) -> dict:
    """The config of ``seed``'s study: a copy with the seeds, directories and study set to that one seed."""
    if is_own_seed(config, seed):
        raise ValueError(f"seed {seed} is the config's own study in {config['results_dir']!r}; it needs no copy")
    study = copy.deepcopy(config)
    study["seed"] = seed
    study["world"]["seed"] = seed
    study["seeds"] = None
    study["results_dir"] = str(seed_results_dir(config, seed))
    study["logs_dir"] = str(Path(config["logs_dir"]) / SEEDS_SUBDIR / str(seed))
    study["studies"] = ["prefill_mask"]
    study["freeform"]["activate"] = False
    study["planner"] = None
    return study


def sweep_problems(config: dict) -> list[str]:
    """A sweep needs the study it repeats."""
    if sweep_seeds(config) and "prefill_mask" not in config["studies"]:
        return ["config key 'seeds': a seed sweep repeats the prefill_mask study, which 'studies' does not run"]
    return []
