"""Full-weight fine-tuning under a training mask (Stages 3A, 3B and 5)."""

from ablation.prefill.finetune.run import FinetuneSettings, run_finetune

__all__ = ["FinetuneSettings", "run_finetune"]
