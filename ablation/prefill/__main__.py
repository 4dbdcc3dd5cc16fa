"""``python -m ablation.prefill parity [--config PATH]``: see ``ablation.prefill.parity``."""

import sys

from ablation.prefill.parity import main

sys.exit(main())
