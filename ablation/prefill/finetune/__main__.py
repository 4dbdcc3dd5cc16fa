"""Entry point of each process of a distributed fine-tune: ``python -m ablation.prefill.finetune JOB.json``."""

import json
import logging
import sys

from ablation.prefill.finetune.run import FinetuneSettings, run_finetune

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
job = json.loads(open(sys.argv[1]).read())
run_finetune(**{**job, "settings": FinetuneSettings(**job["settings"])})
