"""Lenses: measurements that put every process (characters, simulators, agents) on the same footing.

* `behaviour` — per-episode return, true return, success, length, event counts and fraction of
  the optimal return, from a policy (`evaluate`), a corpus (`from_corpus`) or any `Episodes`
  (`from_rollouts`: a model's `Simulator.act`, an agent's `rollouts`); detours, cell visits, and
  the exact out-of-distribution action rate under a corpus's ideal law.
* `fidelity` — a simulator against its corpus's exact law: excess log-loss by token type,
  calibration, action KL, legality of dreams, two-sample tests of dreamed vs real episodes.
* `conditioning` — what prompts do: return sweeps, character match.

Inside the network (docs/inside.md):

* `probes` — linear probes of named activations, with control tasks and a random-init baseline;
* `layers` — where two models differ, block by block: weight change, linear CKA, transplants;
* `steering` — directions added to an activation while the model acts, and the character-match rate.
"""
