"""The original prefill study, as far as this workflow reproduces it: its lm-eval tasks and prompts
(``tasks``), its per-token scorer kept as a test oracle (``scorer``) and its published numbers
(``published``)."""
