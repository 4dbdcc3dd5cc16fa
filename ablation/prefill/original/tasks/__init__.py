"""lm-eval tasks with the original study's prompts (docs/prefill.md, "The `original` task set").

The ``original`` task set: hellaswag, piqa, arc_easy, arc_challenge and winogrande on the hub
datasets lm-eval's own tasks use, validation split, with the original's prompt formats
(``utils``) instead of lm-eval's. Scored by ``masked_hf`` with the original's tokenization (no
BOS, ``pair_encoding=original``); ``ablation.prefill.evaluate`` adds its metric, ``acc_per_token``.
"""

from pathlib import Path

ORIGINAL_TASKS_DIR = Path(__file__).resolve().parent
