"""``python -m ablation.bridge JOB``: one process of a bridge run (what ``accelerate launch`` starts);
``python -m ablation.bridge parity …``: a re-run's settings against a preserved run's log (``parity``)."""

import json
import sys

if sys.argv[1:2] == ["parity"]:
    from ablation.bridge.parity import main

    sys.exit(main(sys.argv[2:]))

from ablation.bridge.training import run_bridge

run_bridge(**json.loads(open(sys.argv[1]).read()))
