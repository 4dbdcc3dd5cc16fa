"""``python -m ablation.bridge JOB``: one process of a bridge run (what ``accelerate launch`` starts)."""

import json
import sys

from ablation.bridge.run import run_bridge

run_bridge(**json.loads(open(sys.argv[1]).read()))
