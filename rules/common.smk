"""Config validation, the results and log folders, and the helpers every study's rules use."""

import os
from pathlib import Path

from ablation.code_version import library_code_sha256
from ablation.config import check_config_files, validate_config
import ablation.bridge  # each study registers its config checks when imported
import ablation.prefill

check_config_files(workflow.overwrite_configfiles)
validate_config(config)

# jobs import the workflow's library from this checkout, in this environment or a conda one
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))


envvars:
    "PYTHONPATH",


RESULTS = Path(config["results_dir"])
LOGS = Path(config["logs_dir"])
WORLD = RESULTS / "world"
PREFETCH_RECORD = RESULTS / "prefetch.json"


def library_code(script):
    """A rule's ``library_code`` params value: the hash of the ablation modules its script imports
    (ablation.code_version), so a change to them reruns the rule's jobs and nothing else."""
    return library_code_sha256(Path(workflow.basedir) / "workflow" / "scripts" / script)


def prefetch_inputs():
    """The prefetch record, as an input of every GPU job when something comes from the hub (the job
    then runs offline). Asked while inputs are built, after every rule file is included, so the
    bridge's hub lists (rules/bridge/common.smk) are defined whatever the include order."""
    hub = [
        prefetched_model(),
        prefetched_tasks(),
        prefetched_finetune_dataset(),
        bridge_hub_models(),
        bridge_hub_datasets(),
    ]
    return {"prefetch": PREFETCH_RECORD} if any(hub) else {}


def scheduler_resources(kind):
    """The cluster request of an 'eval' or 'finetune' job; unset entries are left out."""
    settings = config["resources"][kind]
    request = {
        "gpu": settings["gpus"],
        "gpu_model": settings["gpu_model"],
        "mem_mb": settings["mem_mb"],
        "runtime": settings["runtime"],
        "slurm_partition": settings["slurm_partition"],
        "slurm_account": settings["slurm_account"],
        "constraint": settings["constraint"],
    }
    return {name: value for name, value in request.items() if value not in (None, 0)}


def paper_outputs(report_files):
    """The LaTeX tables and PDF figures of a report (files as ``ablation.layout.report_files`` lists them), in paper/."""
    tables = [Path("paper/tables") / path.name for path in report_files["tables"] if path.suffix == ".tex"]
    figures = [Path("paper/figures") / path.name for path in report_files["figures"] if path.suffix == ".pdf"]
    return tables + figures
