"""Training processes, one module per process: `predict` (next-token prediction on a corpus:
simulators, behaviour cloning, Decision Transformers), `reinforce` (PPO from scratch on symbolic
observations), `finetune` (RL fine-tuning of a trained simulator on its own token stream, with a
KL penalty to the original); `checkpoint` stores models."""
