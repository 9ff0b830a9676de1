"""The look-ahead lens: how far ahead a trajectory model's residual stream predicts.

    rows = lookahead(sim, corpus, offsets=(0, 1, 2, 4))   # per (layer, target, offset k)
    per = lookahead_targets(corpus, 2)                     # {target: (rows, labels at t+2)}
    x = ideal_features(corpus)                             # what the ideal predictor knows at t

A linear probe on the activations at step t (the position where the model predicts a_t, having
seen s_t; `probes.step_activations`) is asked for something k steps ahead:

    action   the action a_{t+k}                                   (rows with t + k < length)
    cell     the agent's cell token of s_{t+k} (state token 0)    (rows with t + k <= length:
             s_{t+k} exists up to the last state s_L)
    event    the first event of `EVENT_NAMES` that happens at step t+k (the step from s_{t+k} to
             s_{t+k+1}), or `len(EVENT_NAMES)` for none          (rows with t + k < length)

Every target is a classification scored by cross-validated accuracy, folds split by episode,
exactly as in `probes`: `control` is the same probe on Hewitt & Liang's control task (one random
label per input type s_t), `selectivity = score − control`, and `baseline` is the same probe on a
randomly initialised model of the same architecture. `chance` is the share of the most frequent
label, what always guessing it scores.

`ideal` is a ceiling of sorts: the same probe on the ideal predictor's sufficient statistic at
step t (`ideal_features`): one-hot state tokens of s_t, the ideal posterior over the corpus's
characters given the history, and their outer product. Given the episode's scene, the future of
an episode depends on its history only through (s_t, posterior), so this probe reads what the
ideal knows about step t+k as far as a linear probe can (the scene is left out: in worlds whose
layout varies by episode the statistic is not complete, and the ceiling may be beaten). It does
not depend on the layer and is computed once per (target, offset).
"""

from __future__ import annotations

import numpy as np

from simulacra.lenses.probes import control_labels, first_episodes, probe_score, residual_names, step_activations, step_index
from simulacra.world.core import EVENT_NAMES

LOOKAHEAD_TARGETS = ("action", "cell", "event")


def _which(which) -> tuple[str, ...]:
    return (which,) if isinstance(which, str) else tuple(which)


def _check(corpus, offsets, which) -> None:
    horizon = int(corpus.params.horizon)
    for k in offsets:
        if int(k) != k:
            raise ValueError(f"offset {k!r} is not a whole number of steps")
        if k < 0:
            raise ValueError(f"offset {k} is negative: the look-ahead lens only looks ahead (offsets >= 0)")
        if k >= horizon:
            raise ValueError(f"offset {k} is beyond the context: episodes of this world have at most {horizon} steps")
    for name in which:
        if name not in LOOKAHEAD_TARGETS:
            raise ValueError(f"unknown look-ahead target {name!r}; known: {', '.join(LOOKAHEAD_TARGETS)}")


def lookahead_targets(corpus, offset: int, which=LOOKAHEAD_TARGETS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{target: (rows, y)} for each target of `which`: `rows` indexes the live steps t (in
    `step_index(corpus)` order) whose step t+offset exists (t + offset < length for action and
    event; t + offset <= length for cell, since s_{t+k} exists up to s_L), and `y` (int64) is the
    label at t+offset: the action a_{t+k}, the agent's cell token of s_{t+k}, or the index of the
    first event of `EVENT_NAMES` at step t+k (`len(EVENT_NAMES)` for none)."""
    which = _which(which)
    _check(corpus, (offset,), which)
    e = corpus.episodes
    ep, t = step_index(corpus)
    length = np.asarray(e.length, np.int64)[ep]
    k = int(offset)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in which:
        if name == "cell":
            rows = np.flatnonzero(t + k <= length)
            y = np.asarray(e.states[ep[rows], t[rows] + k, 0], np.int64)
        else:
            rows = np.flatnonzero(t + k < length)
            if name == "action":
                y = np.asarray(e.actions[ep[rows], t[rows] + k], np.int64)
            else:
                ev = np.asarray(e.events[ep[rows], t[rows] + k], bool)  # (M, E)
                y = np.where(ev.any(1), ev.argmax(1), len(EVENT_NAMES)).astype(np.int64)
        out[name] = (rows, y)
    return out


def ideal_features(corpus, ideal=None) -> np.ndarray:
    """(M, F) float32 per live step (`step_index` order): the ideal predictor's statistic at step
    t: one-hot of each state token of s_t (over the values each token takes in `corpus`), the
    ideal posterior over the characters given the history before a_t, and their outer product
    (one-hot ⊗ posterior). `ideal` is `compute_ideal(corpus)` (computed when None)."""
    if ideal is None:
        from simulacra.corpus.ideal import compute_ideal

        ideal = compute_ideal(corpus)
    ep, t = step_index(corpus)
    states = np.asarray(corpus.episodes.states[ep, t], np.int64)  # (M, S)
    post = np.asarray(ideal.posterior, np.float32)[ep, t]  # (M, C)
    if post.shape[0] != states.shape[0]:
        raise ValueError("the ideal does not belong to this corpus: its episodes differ in number or length")
    onehot = []
    for j in range(states.shape[1]):
        values, inverse = np.unique(states[:, j], return_inverse=True)
        onehot.append(np.eye(len(values), dtype=np.float32)[inverse.reshape(-1)])
    hot = np.concatenate(onehot, axis=1) if onehot else np.zeros((len(states), 0), np.float32)
    outer = (hot[:, :, None] * post[:, None, :]).reshape(len(hot), -1)
    return np.concatenate([hot, post, outer], axis=1)


def lookahead(sim, corpus, offsets=(0, 1, 2, 4), which=LOOKAHEAD_TARGETS, names=None, max_episodes: int = 300,
              folds: int = 5, seed: int = 0, baseline: bool = True, ideal=True, method: str = "logistic") -> list[dict]:  # fmt: skip
    """One row per (layer, target, offset), layers outermost, then targets in `which` order, then
    offsets: `name`, `layer`, `target`, `offset`, `score` (CV accuracy), `control`, `selectivity =
    score − control`, `baseline` (the random-init model; NaN without), `ideal` (the probe on
    `ideal_features`, per (target, offset); NaN without), `chance` (share of the most frequent
    label) and `n` (rows). The corpus is cut to its first `max_episodes` episodes first. The
    model's probes (score, control, baseline) are `probes.probe_score` with `method` (default
    logistic, as the other probes); the ideal's is a ridge classifier, which on its discrete
    features (one-hot state ⊗ posterior) fits the class frequencies of each state and posterior
    — the Bayes rule on that statistic — in one solve, where logistic regression on some 10³
    sparse columns took seconds a fold. `ideal` may also be the corpus's `compute_ideal` result,
    so that a caller probing several models of one corpus computes it once; it must be the ideal
    of the whole corpus passed here (before the cut to `max_episodes`)."""
    offsets = tuple(int(k) if int(k) == k else k for k in offsets)
    which = _which(which)
    _check(corpus, offsets, which)
    corpus = first_episodes(corpus, max_episodes)
    names = list(names or residual_names(sim.spec.n_layers))

    ep, t = step_index(corpus)
    types = corpus.episodes.states[ep, t]
    per = {k: lookahead_targets(corpus, k, which) for k in offsets}
    for k, targets in per.items():
        for target, (rows, _) in targets.items():
            if len(np.unique(ep[rows])) < 2:
                raise ValueError(f"target {target!r} at offset {k} has steps from fewer than two episodes: too few to probe")

    acts = step_activations(sim, corpus, names)
    base = None
    if baseline:
        import jax

        from simulacra.model import Simulator

        rnd = Simulator.init(sim.spec, sim.fmt.params, jax.random.PRNGKey(10_000 + seed))
        rnd.card = dict(sim.card)
        base = step_activations(rnd, corpus, names)
    x_ideal = None if ideal is False or ideal is None else ideal_features(corpus, None if ideal is True else ideal)

    # per (target, offset): labels, control labels, chance and the ideal's score, once
    fixed: dict[tuple[str, int], dict] = {}
    for target in which:
        for k in offsets:
            rows, y = per[k][target]
            g = ep[rows]
            _, counts = np.unique(y, return_counts=True)
            fixed[target, k] = {
                "rows": rows, "y": y, "groups": g,
                "control_y": control_labels(y, types[rows], True, seed),
                "chance": float(counts.max() / counts.sum()),
                "ideal": probe_score(x_ideal[rows], y, g, True, folds, method="ridge") if x_ideal is not None else float("nan"),
            }  # fmt: skip

    out = []
    for layer, name in enumerate(names):
        for target in which:
            for k in offsets:
                f = fixed[target, k]
                rows, y, g = f["rows"], f["y"], f["groups"]
                x = acts[name][rows]
                score = probe_score(x, y, g, True, folds, method=method)
                control = probe_score(x, f["control_y"], g, True, folds, method=method)
                out.append({
                    "name": name, "layer": layer, "target": target, "offset": k,
                    "score": score, "control": control, "selectivity": score - control,
                    "baseline": probe_score(base[name][rows], y, g, True, folds, method=method) if base is not None else float("nan"),
                    "ideal": f["ideal"], "chance": f["chance"], "n": int(len(y)),
                })  # fmt: skip
    return out


__all__ = ["LOOKAHEAD_TARGETS", "ideal_features", "lookahead", "lookahead_targets"]
