"""Training processes: one module per process (`predict`; `reinforce` and `finetune` later)."""
