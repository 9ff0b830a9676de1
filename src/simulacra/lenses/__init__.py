"""Lenses: measurements that put every process (characters, simulators, agents) on the same footing.

* `behaviour` — per-episode return, true return, success, length, event counts and fraction of
  the optimal return, from a policy (`evaluate`) or a corpus (`from_corpus`).
"""
