"""The process kinds a study can run, one file per kind; importing this package registers them
(the CLI does so for every `simulacra study` command; `--plugin MODULE` adds more).

* `reinforce.py`  PPO from scratch;
* `predict.py`    a simulator or behaviour cloning trained on the corpus;
* `condition.py`  a Decision Transformer prompted with a target return;
* `finetune.py`   that Decision Transformer fine-tuned by RL with a KL penalty;
* `layers.py`     where fine-tuning changed it, block by block;
* `myopia.py`     an ordinary and a myopic simulator against the exact ideal, and a probe of the hidden choice;
* `lookahead.py`  a simulator (optionally multi-head) probed for the action, cell and event k steps ahead;
* `onset.py`      PPO at a grid of discounts: where it turns instrumental, against the exact optimum;
* `oracle.py`     H11: PPO and a Decision Transformer in an oracle world, whose last step is a graded prediction;
* `probe.py`      a linear probe of its residual stream;
* `steer.py`      a character-tagged simulator steered along a tag direction;
* `text.py`       the text world's kinds (no gridworld): trait probes, steering and fine-tuning against swearing.

What they share: `behaviour.py` (the behaviour lens's settings, its metrics and `measure`, so a
metric means the same thing for every kind), `inputs.py` (the param groups that describe a model,
and the corpus, trained and fine-tuned models made through the study's artifact cache) and
`sections.py` (the report sections the kinds contribute). docs/studies.md, "Process kinds", lists
their params and metrics; docs/extending.md, "3. A process kind", writes a new one.
"""

from simulacra.kinds import condition, finetune, layers, lookahead, myopia, onset, oracle, predict, probe, reinforce, steer, text

__all__ = ["condition", "finetune", "layers", "lookahead", "myopia", "onset", "oracle", "predict", "probe", "reinforce", "steer", "text"]
