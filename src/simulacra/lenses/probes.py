"""Linear probes: what a trajectory model represents, layer by layer.

    acts = step_activations(sim, corpus, names)        # {name: (M, d)} at every live step of the corpus
    rows = probe_layers(sim, corpus)                   # per (layer, target): score, control, selectivity, baseline

Features are the activations at the position where the model predicts the action a_t (the last
token of s_t), teacher-forced on the corpus's own episodes: one row per live step. Targets:

    rtg          observed return still to come from step t (regression, R²)
    coin_cell    the coin's cell (classification, accuracy; worlds with coins)
    character    the acting character (classification; corpora of more than one)
    posterior    the ideal posterior over characters given the history (regression, mean R² over
                 characters; `corpus.ideal`)
    agent_cell   the agent's cell (classification)

Probes are regularised linear models from scikit-learn (standardised features, then
`LogisticRegression` or `Ridge`), scored by K-fold cross-validation with folds split *by episode*
(`GroupKFold`), so a probe never sees a step of an episode it is tested on. Each target has a
control task in the manner of Hewitt & Liang: every input type (the state tokens s_t) gets a
random label drawn once (a random class, or a random value of the target), so a probe can only
score on it by memorising types; `selectivity = score − control`. `baseline` is the same probe
on a randomly initialised model of the same architecture (`Simulator.init`): what the
architecture and the input give without training.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from simulacra.corpus import coin_cells
from simulacra.corpus.tokens import encode
from simulacra.nets.transformer import Hooks

TARGETS = ("rtg", "coin_cell", "character", "posterior", "agent_cell")
CLASSIFICATION = {"coin_cell", "character", "agent_cell"}


def residual_names(n_layers: int) -> list[str]:
    """The residual stream after the embedding and after every block: the probe's default layers."""
    return ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(n_layers)]


def first_episodes(corpus, n: int):
    """The corpus cut to its first `n` episodes (itself if it has no more)."""
    return corpus.subset(np.arange(n)) if corpus.n_episodes > n else corpus


def step_index(corpus) -> tuple[np.ndarray, np.ndarray]:
    """(episode, t) of every live step of the corpus, episode-major."""
    length = np.asarray(corpus.episodes.length, np.int64)
    ep = np.repeat(np.arange(len(length)), length)
    t = np.concatenate([np.arange(n) for n in length]) if len(length) else np.zeros(0, np.int64)
    return ep, t.astype(np.int64)


def step_activations(sim, corpus, names, batch: int = 64, hooks: Hooks | None = None) -> dict[str, np.ndarray]:
    """{name: (M, d)} activations at the position predicting each live action of `corpus`
    (rows in `step_index` order), from `sim` run on the corpus's token rows."""
    names = tuple(names)
    enc = encode(corpus, sim.fmt)
    local = np.asarray(sim.fmt.to_local(enc["tokens"]))
    ep, t = step_index(corpus)
    pos = np.asarray(sim.fmt.action_pos(t)) - 1
    rec = Hooks(names=names, add=(hooks.add if hooks else None), replace=(hooks.replace if hooks else None))
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    apply = _apply_fn(sim)
    for i in range(0, corpus.n_episodes, batch):
        rows = local[i : i + batch]
        n = len(rows)
        if n < batch:
            rows = np.concatenate([rows, np.repeat(rows[:1], batch - n, axis=0)])
        cache = apply(sim.params, jnp.asarray(rows[:, :-1]), rec)
        sel = (ep >= i) & (ep < i + n)
        for name in names:
            a = np.asarray(cache[name])
            out[name].append(a[ep[sel] - i, pos[sel]].reshape(int(sel.sum()), -1))
    return {k: np.concatenate(v) for k, v in out.items()}


_APPLY: dict = {}


def _apply_fn(sim):
    import jax

    key = (sim.spec, sim.fmt.params)
    if key not in _APPLY:
        model = sim.model
        _APPLY[key] = jax.jit(lambda params, tokens, hooks: model.apply(params, tokens, hooks)[1])
    return _APPLY[key]


def targets(corpus, which=TARGETS) -> dict[str, np.ndarray]:
    """The probe targets at every live step (`step_index` order); targets a corpus cannot give
    (no coin, one character) are left out."""
    ep, t = step_index(corpus)
    e = corpus.episodes
    out: dict[str, np.ndarray] = {}
    for name in which:
        if name == "rtg":
            reward = np.asarray(e.reward, np.float64)
            rtg = np.cumsum(reward[:, ::-1], axis=1)[:, ::-1]
            out[name] = rtg[ep, t]
        elif name == "coin_cell" and corpus.params.n_coins:
            out[name] = coin_cells(e.scene, corpus.params)[ep, 0]
        elif name == "character" and len(corpus.mixture.names) > 1:
            out[name] = np.asarray(e.character, np.int64)[ep]
        elif name == "posterior" and len(corpus.mixture.names) > 1:
            from simulacra.corpus.ideal import compute_ideal

            out[name] = compute_ideal(corpus).posterior[ep, t]
        elif name == "agent_cell":
            out[name] = e.states[ep, t, 0].astype(np.int64)
        elif name not in TARGETS:
            raise ValueError(f"unknown probe target {name!r}; known: {', '.join(TARGETS)}")
    return out


def control_labels(y: np.ndarray, types: np.ndarray, classification: bool, seed: int = 0) -> np.ndarray:
    """Hewitt & Liang's control task: one random label per input type (row of `types`): a random
    class of `y` (classification) or a random draw of `y`'s values (regression)."""
    rng = np.random.default_rng(seed)
    _, inverse = np.unique(types, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    n_types = int(inverse.max()) + 1 if len(inverse) else 0
    if classification:
        classes = np.unique(y)
        return classes[rng.integers(0, len(classes), n_types)][inverse]
    return y[rng.integers(0, len(y), n_types)][inverse]


PROBE_METHODS = ("logistic", "ridge")
"""Linear classifiers a probe can fit: L2-regularised logistic regression (the default), or
one-vs-rest ridge regression on ±1 targets (`RidgeClassifier`: one linear solve per fold; the
look-ahead lens fits the ideal's ceiling with it)."""


def probe_score(x: np.ndarray, y: np.ndarray, groups: np.ndarray, classification: bool, folds: int = 5, c: float = 1.0,
                method: str = "logistic") -> float:  # fmt: skip
    """Cross-validated accuracy (classification) or R² (regression; mean over output columns) of
    a regularised linear probe, folds split by `groups` (episodes). `method` picks the classifier
    (`PROBE_METHODS`); regression is always ridge."""
    from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if method not in PROBE_METHODS:
        raise ValueError(f"unknown probe method {method!r}; known: {', '.join(PROBE_METHODS)}")
    folds = min(folds, len(np.unique(groups)))
    if folds < 2:
        raise ValueError("a probe needs steps from at least two episodes")
    if classification:
        if len(np.unique(y)) < 2:
            return 1.0  # one class: trivially predicted
        classifier = LogisticRegression(C=c, max_iter=300) if method == "logistic" else RidgeClassifier(alpha=1.0 / c)
        model = make_pipeline(StandardScaler(), classifier)
        scoring = "accuracy"
    else:
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0 / c))
        scoring = "r2"
    scores = cross_val_score(model, x, y, groups=groups, cv=GroupKFold(n_splits=folds), scoring=scoring)
    return float(np.mean(scores))


def probe_layers(sim, corpus, which=TARGETS, names=None, max_episodes: int = 400, folds: int = 5, seed: int = 0,
                 baseline: bool = True, acts: dict | None = None) -> list[dict]:  # fmt: skip
    """Per (layer, target): `score`, `control`, `selectivity` and (with `baseline`) the random-init
    model's `baseline` score, with `n` rows. `acts` may hand in precomputed activations."""
    corpus = first_episodes(corpus, max_episodes)
    names = list(names or residual_names(sim.spec.n_layers))
    acts = acts if acts is not None else step_activations(sim, corpus, names)
    base = None
    if baseline:
        import jax

        from simulacra.model import Simulator

        rnd = Simulator.init(sim.spec, sim.fmt.params, jax.random.PRNGKey(10_000 + seed))
        rnd.card = dict(sim.card)
        base = step_activations(rnd, corpus, names)
    ep, t = step_index(corpus)
    types = corpus.episodes.states[ep, t]
    rows = []
    for target, y in targets(corpus, which).items():
        cls = target in CLASSIFICATION
        y_control = control_labels(y, types, cls, seed)
        for layer, name in enumerate(names):
            score = probe_score(acts[name], y, ep, cls, folds)
            control = probe_score(acts[name], y_control, ep, cls, folds)
            rows.append({
                "name": name, "layer": layer, "target": target, "kind": "accuracy" if cls else "r2",
                "score": score, "control": control, "selectivity": score - control,
                "baseline": probe_score(base[name], y, ep, cls, folds) if base is not None else float("nan"),
                "n": int(len(y)),
            })  # fmt: skip
    return rows


__all__ = ["PROBE_METHODS", "TARGETS", "control_labels", "first_episodes", "probe_layers", "probe_score", "residual_names", "step_activations", "step_index", "targets"]
