"""Lenses on text simulators, each measured against the exact ideal.

* `word_activations` — the residual stream at the position that predicts each word (after
  reading the words before it), rows in (document, t) order (`word_index`).
* `trait_probes` — per layer and trait, a linear probe's cross-validated accuracy for the
  document persona's trait, against Hewitt & Liang's control task (one random label per last
  word read), the same probe on a random-init model, and the **ideal's accuracy**: the
  Bayes-optimal guess from the words so far (P(trait | words) > 1/2), the ceiling of any reader
  of the prefix.
* `posterior_probe` — how well a linear (ridge) readout of one layer recovers the ideal's
  posterior over the mixture's personas (R², folds by document), and how often its argmax is
  the ideal's.
* `persona_means` and `additivity` — mean activation per persona at a layer, and how far a
  combined persona's mean is from the sum of its traits' offsets: for traits a, b,
  ‖(μ_ab − μ_0) − (μ_a − μ_0) − (μ_b − μ_0)‖ / ‖μ_ab − μ_0‖ (0: exactly additive), with the
  same number for a persona-shuffled control.
* `trait_direction` and `steer_swearing` — a trait's direction at a layer (difference of the
  means of documents with and without the trait), and the swear rate of generated text when k
  times it is added at every position, against the ideal's rates: the mixture's own and the
  rate of its personas that have the trait (what a full posterior shift to the trait gives).

Every lens reads only the model's forward pass and the corpus; none trains the model.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.lenses.probes import control_labels, probe_score, residual_names
from simulacra.nets.transformer import Hooks
from simulacra.text.corpus import TextCorpus, text_ideal
from simulacra.text.grammar import SWEAR_WORDS, TRAITS, persona_traits

__all__ = [
    "additivity", "dream_personas", "expected_swears", "persona_means", "posterior_probe", "steer_nats", "steer_swearing", "swear_rate", "trait_direction", "trait_probes", "word_activations",
    "word_index",
]  # fmt: skip


def _check_text(corpus) -> None:
    if not isinstance(corpus, TextCorpus):
        raise ValueError(f"a text lens needs a text corpus (simulacra.text.TextCorpus), not a {type(corpus).__name__}")


def _check_model(sim) -> None:
    from simulacra.text.model import TextSimulator

    if not isinstance(sim, TextSimulator):
        raise ValueError(f"a text lens needs a text model (simulacra.text.model.TextSimulator), not a {type(sim).__name__}")


def word_index(corpus: TextCorpus) -> tuple[np.ndarray, np.ndarray]:
    """(document, t) of every word of the corpus (`<eod>` included), document-major."""
    lengths = np.asarray(corpus.lengths, np.int64)
    doc = np.repeat(np.arange(len(lengths)), lengths)
    t = np.concatenate([np.arange(n) for n in lengths]) if len(lengths) else np.zeros(0, np.int64)
    return doc, t


@functools.lru_cache(maxsize=16)
def _apply_fn(config):
    from simulacra.nets.transformer import Transformer

    model = Transformer(config)
    return jax.jit(lambda params, tokens, hooks: model.apply(params, tokens, hooks)[1])


def word_activations(sim, corpus: TextCorpus, names=None, batch: int = 128) -> dict[str, np.ndarray]:
    """{name: (M, d)} the activation at the position predicting each word (`word_index` order)."""
    _check_model(sim)
    _check_text(corpus)
    names = tuple(names or residual_names(sim.spec.n_layers))
    tokens, _ = sim.fmt.encode(corpus)
    doc, t = word_index(corpus)
    pos = sim.fmt.prefix_len + t - 1
    rec = Hooks(names=names)
    apply = _apply_fn(sim.model.config)
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(0, len(tokens), batch):
        rows = tokens[i : i + batch]
        n = len(rows)
        if n < batch:
            rows = np.concatenate([rows, np.repeat(rows[:1], batch - n, axis=0)])
        cache = apply(sim.params, jnp.asarray(rows[:, :-1]), rec)
        sel = (doc >= i) & (doc < i + n)
        for name in names:
            a = np.asarray(cache[name])
            out[name].append(a[doc[sel] - i, pos[sel]].reshape(int(sel.sum()), -1))
    return {k: np.concatenate(v) for k, v in out.items()}


def _given(acts: dict | None, sim, corpus: TextCorpus, names) -> dict[str, np.ndarray]:
    """`acts` checked against the corpus's word count (one row per word), else computed."""
    if acts is None:
        return word_activations(sim, corpus, names)
    n = int(np.asarray(corpus.lengths, np.int64).sum())
    for name in names:
        if name not in acts or len(acts[name]) != n:
            raise ValueError(f"the activations handed in do not fit: {name!r} needs one row for each of the corpus's {n} words")
    return acts


def _first(corpus: TextCorpus, n: int) -> TextCorpus:
    return corpus.subset(np.arange(n)) if corpus.n_documents > n else corpus


def _last_word(corpus: TextCorpus) -> np.ndarray:
    """Per word row: the word read last before it (−1 at t = 0): the control task's input type."""
    doc, t = word_index(corpus)
    prev = np.where(t > 0, corpus.words[doc, np.maximum(t - 1, 0)], -1)
    return prev.reshape(-1, 1)


def _random_init(sim, seed: int):
    from simulacra.text.model import TextSimulator

    rnd = TextSimulator.init(sim.spec, sim.fmt, jax.random.PRNGKey(10_000 + seed))
    rnd.card = dict(sim.card)
    return rnd


def trait_probes(sim, corpus: TextCorpus, names=None, max_documents: int = 400, folds: int = 5, seed: int = 0,
                 baseline: bool = True, acts: dict | None = None) -> list[dict]:  # fmt: skip
    """One row per (layer, trait) that varies across the mixture: `score` (CV accuracy of a
    logistic probe for the document persona's trait), `control`, `selectivity = score − control`,
    `baseline` (random-init model; NaN without), `ideal` (the Bayes guess from the words so far),
    `chance` (the majority share) and `n`. `acts` may hand in `word_activations` of the corpus's
    first `max_documents` documents at `names`."""
    _check_model(sim)
    _check_text(corpus)
    corpus = _first(corpus, max_documents)
    names = list(names or residual_names(sim.spec.n_layers))
    acts = _given(acts, sim, corpus, names)
    base = word_activations(_random_init(sim, seed), corpus, names) if baseline else None
    doc, t = word_index(corpus)
    ideal = text_ideal(corpus)
    types = _last_word(corpus)
    traits = np.array([persona_traits(p) for p in corpus.personas])  # (N, 4)
    rows = []
    for j, trait in enumerate(TRAITS):
        y = traits[doc, j]
        if len(np.unique(y)) < 2:
            continue  # every persona of the mixture has it, or none does
        ideal_acc = float(((ideal.traits[doc, t, j] > 0.5) == (y == 1)).mean())
        chance = float(max(y.mean(), 1 - y.mean()))
        y_control = control_labels(y, types, True, seed)
        for layer, name in enumerate(names):
            score = probe_score(acts[name], y, doc, True, folds)
            control = probe_score(acts[name], y_control, doc, True, folds)
            rows.append({
                "name": name, "layer": layer, "trait": trait, "score": score, "control": control, "selectivity": score - control,
                "baseline": probe_score(base[name], y, doc, True, folds) if base is not None else float("nan"),
                "ideal": ideal_acc, "chance": chance, "n": int(len(y)),
            })  # fmt: skip
    return rows


def posterior_probe(sim, corpus: TextCorpus, name: str | None = None, max_documents: int = 400, folds: int = 5) -> dict:
    """A ridge readout of layer `name` (default: the last block) onto the ideal posterior over
    the mixture's personas: `r2` (CV, mean over personas), `argmax_agreement` (how often the
    readout's likeliest persona is the ideal's) and `n`."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _check_model(sim)
    _check_text(corpus)
    if len(corpus.mixture.personas) < 2:
        raise ValueError("a posterior probe needs a mixture of at least two personas")
    corpus = _first(corpus, max_documents)
    name = name or residual_names(sim.spec.n_layers)[-1]
    x = word_activations(sim, corpus, [name])[name]
    doc, t = word_index(corpus)
    y = text_ideal(corpus).posterior[doc, t]  # (M_rows, personas)
    folds = min(folds, corpus.n_documents)
    pred = cross_val_predict(make_pipeline(StandardScaler(), Ridge(alpha=1.0)), x, y, groups=doc, cv=GroupKFold(n_splits=folds))
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    r2 = float(np.mean(1 - ss_res / np.maximum(ss_tot, 1e-12)))
    return {"name": name, "r2": r2, "argmax_agreement": float((pred.argmax(1) == y.argmax(1)).mean()), "n": int(len(y))}


def persona_means(sim, corpus: TextCorpus, name: str, min_t: int = 1, acts: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """{persona: mean activation at `name` over its documents' words at positions ≥ `min_t`}.
    `acts` may hand in `word_activations(sim, corpus, [name])[name]` (they depend on the words
    only, so those of a corpus with its persona labels shuffled serve too)."""
    x = _given(None if acts is None else {name: acts}, sim, corpus, [name])[name]
    doc, t = word_index(corpus)
    keep = t >= min_t
    out = {}
    for p in corpus.mixture.personas:
        sel = keep & (corpus.personas[doc] == p)
        if sel.any():
            out[int(p)] = x[sel].mean(0)
    return out


def _additive_error(means: dict[int, np.ndarray], a: int, b: int) -> float:
    """‖(μ_ab − μ_0) − (μ_a − μ_0) − (μ_b − μ_0)‖ / ‖μ_ab − μ_0‖ for trait bits a, b over every
    background persona (no a, no b) whose four corners are all present; the mean over backgrounds."""
    errs = []
    for p0 in means:
        if p0 & (a | b):
            continue
        corners = (p0, p0 | a, p0 | b, p0 | a | b)
        if not all(c in means for c in corners):
            continue
        m0, ma, mb, mab = (means[c] for c in corners)
        actual = mab - m0
        errs.append(float(np.linalg.norm(actual - (ma - m0) - (mb - m0)) / max(np.linalg.norm(actual), 1e-12)))
    return float(np.mean(errs)) if errs else float("nan")


def additivity(sim, corpus: TextCorpus, name: str | None = None, pairs=(("friendly", "sailor"),), seed: int = 0) -> list[dict]:
    """Per pair of traits: `error` (the relative distance of the combined persona's offset from
    the sum of its traits' offsets, see the module docstring), `control` (the same with the
    persona labels of documents shuffled), and the number of backgrounds it averages over."""
    _check_model(sim)
    _check_text(corpus)
    name = name or residual_names(sim.spec.n_layers)[-1]
    means = persona_means(sim, corpus, name)
    shuffled = dataclasses.replace(corpus, personas=np.random.default_rng(seed).permutation(corpus.personas))
    control_means = persona_means(sim, shuffled, name)
    rows = []
    for ta, tb in pairs:
        for trait in (ta, tb):
            if trait not in TRAITS:
                raise ValueError(f"unknown trait {trait!r}; traits are {', '.join(TRAITS)}")
        a, b = 1 << TRAITS.index(ta), 1 << TRAITS.index(tb)
        error = _additive_error(means, a, b)
        if not np.isfinite(error):
            raise ValueError(f"the mixture lacks a persona with neither, only {ta}, only {tb} and both: additivity of {ta}+{tb} needs all four")
        rows.append({"name": name, "pair": f"{ta}+{tb}", "error": error, "control": _additive_error(control_means, a, b)})
    return rows


def trait_direction(sim, corpus: TextCorpus, trait: str, name: str | None = None, acts: np.ndarray | None = None) -> np.ndarray:
    """(d,) mean activation at `name` of words of documents whose persona has `trait`, minus the
    mean of those without it (positions t ≥ 1). `acts` may hand in `word_activations(sim, corpus,
    [name])[name]`."""
    _check_model(sim)
    _check_text(corpus)
    if trait not in TRAITS:
        raise ValueError(f"unknown trait {trait!r}; traits are {', '.join(TRAITS)}")
    name = name or residual_names(sim.spec.n_layers)[-1]
    x = _given(None if acts is None else {name: acts}, sim, corpus, [name])[name]
    doc, t = word_index(corpus)
    has = np.array([persona_traits(p)[TRAITS.index(trait)] for p in corpus.personas])[doc] == 1
    keep = t >= 1
    if not (keep & has).any() or not (keep & ~has).any():
        raise ValueError(f"a direction for {trait!r} needs documents with and without it")
    return x[keep & has].mean(0) - x[keep & ~has].mean(0)


def swear_rate(fmt, tokens: np.ndarray) -> float:
    """Swear words per generated document."""
    from simulacra.text.model import WORD0

    ids = [WORD0 + fmt.words.index(w) for w in SWEAR_WORDS if w in fmt.words]
    return float(np.isin(np.asarray(tokens), ids).sum(1).mean())


def expected_swears(grammar, persona: int) -> float:
    """Exact expected swear words per document of `persona` in `grammar`: the probability of
    being in each compiled state at each position (forward over the automaton), times the
    probability of a swear word there."""
    from simulacra.text.corpus import tables_of

    tables = tables_of(grammar)
    probs = np.exp(tables.logp[persona])  # (S + 1, V)
    swear = [tables.words.index(w) for w in SWEAR_WORDS if w in tables.words]
    at = np.zeros(len(tables.states) + 1)
    at[tables.start] = 1.0
    total = 0.0
    for _ in range(tables.max_len):
        live = at.copy()
        live[tables.end] = 0.0
        total += float((live[:, None] * probs[:, swear]).sum())
        nxt = np.zeros_like(at)
        rows, cols = np.nonzero(tables.next[:-1] >= 0)
        np.add.at(nxt, tables.next[rows, cols], live[rows] * probs[rows, cols])
        at = nxt
    return total


def _ideal_swears(corpus: TextCorpus, personas) -> float:
    """Expected swear words per document of the mixture restricted to `personas` (weights renormalised)."""
    w = dict(zip(corpus.mixture.personas, corpus.mixture.weights))
    weights = np.array([w[p] for p in personas], float)
    rates = np.array([expected_swears(corpus.grammar, p) for p in personas])
    return float((weights * rates).sum() / weights.sum())


def steer_swearing(sim, corpus: TextCorpus, ks=(0.0, 1.0, 2.0, 4.0), trait: str = "sailor", name: str | None = None,
                   n_documents: int = 256, seed: int = 0, direction=None) -> list[dict]:  # fmt: skip
    """Per k: the swear words per document the model generates with k × `trait_direction` added
    at `name` at every position, and the ideal references: `ideal_mixture` (the corpus mixture's
    rate) and `ideal_trait` (the rate of the mixture's personas with the trait: a full shift of
    the posterior to the trait), and `shift` = (rate − rate at k = 0) / (ideal_trait −
    ideal_mixture), the fraction of that shift achieved. `direction` may hand in the trait's
    direction (`trait_direction`)."""
    from simulacra.lenses.steering import steering_hooks

    name = name or residual_names(sim.spec.n_layers)[-1]
    direction = trait_direction(sim, corpus, trait, name) if direction is None else direction
    j = TRAITS.index(trait)
    with_trait = [p for p in corpus.mixture.personas if persona_traits(p)[j]]
    ideal_mix = _ideal_swears(corpus, corpus.mixture.personas)
    ideal_trait = _ideal_swears(corpus, with_trait)
    if sim.fmt.tagged:
        raise ValueError("steering reads an untagged model (a tag fixes the persona)")
    def rate_at(k: float) -> float:
        tokens = sim.generate(jax.random.PRNGKey(seed), n_documents, hooks=steering_hooks(name, direction, float(k)))
        return swear_rate(sim.fmt, tokens)

    rates = {float(k): rate_at(k) for k in ks}
    base = rates[0.0] if 0.0 in rates else rate_at(0.0)
    rows = []
    for k in ks:
        rate = rates[float(k)]
        span = ideal_trait - ideal_mix
        rows.append({"k": float(k), "name": name, "trait": trait, "swear_rate": rate, "ideal_mixture": ideal_mix, "ideal_trait": ideal_trait,
                     "shift": (rate - base) / span if abs(span) > 1e-9 else float("nan"), "n": int(n_documents)})  # fmt: skip
    return rows


def steer_nats(sim, corpus: TextCorpus, k: float, trait: str = "sailor", name: str | None = None, direction=None) -> dict:
    """How far steering moves the model toward the exact law of the trait, in nats: on the
    held-out documents whose persona has `trait`, the mean per-word log-loss of the model with
    k × the trait direction added at `name`, minus that of the ideal restricted to the mixture's
    personas with the trait (`nats_trait`: 0 would be a perfect simulator of those personas), and
    minus that of the mixture's own ideal (`nats_mixture`)."""
    from simulacra.lenses.steering import steering_hooks
    from simulacra.text.grammar import PersonaMixture

    name = name or residual_names(sim.spec.n_layers)[-1]
    direction = trait_direction(sim, corpus, trait, name) if direction is None else direction
    j = TRAITS.index(trait)
    has = np.array([persona_traits(p)[j] for p in corpus.personas]) == 1
    if not has.any():
        raise ValueError(f"no held-out document has the trait {trait!r}")
    sub = corpus.subset(np.flatnonzero(has))
    w = dict(zip(corpus.mixture.personas, corpus.mixture.weights))
    keep = tuple(p for p in corpus.mixture.personas if persona_traits(p)[j])
    restricted = dataclasses.replace(sub, mixture=PersonaMixture(keep, tuple(w[p] for p in keep)))
    live = sub.words != -1
    nll = sim.word_nll(sub, hooks=steering_hooks(name, direction, float(k)))[live]
    return {"k": float(k), "nats_trait": float((nll + text_ideal(restricted).logp[live]).mean()),
            "nats_mixture": float((nll + text_ideal(sub).logp[live]).mean())}  # fmt: skip


def dream_personas(sim, grammar, mixture, key, n: int = 256) -> dict:
    """Who the model's own documents are spoken by, according to the exact law: `valid` (the
    share of generated documents the grammar allows), and over the valid ones the ideal's final
    posterior over `mixture`'s personas: `persona_entropy` (nats) of its mean over documents —
    how many personas the dreams spread over (ln 16 = 2.77 for all 16 equally) — and `shares`
    (that mean, per persona name)."""
    from simulacra.text.corpus import PAD, TextCorpus, tables_of
    from simulacra.text.model import WORD0

    tokens = sim.generate(key, n)
    words = np.asarray(tokens)[:, sim.fmt.prefix_len :].astype(np.int64) - WORD0
    words = np.where(words < 0, PAD, words)
    tables = tables_of(sim.fmt.grammar if grammar is None else grammar)
    lengths = (words != PAD).sum(1)
    ok = lengths > 0
    state = np.full(n, tables.start)
    for t in range(words.shape[1]):
        live = t < lengths
        w = np.where(live, words[:, t], tables.eod)
        nxt = tables.next[state, np.clip(w, 0, len(tables.words) - 1)]
        ok &= ~live | ((w >= 0) & (w < len(tables.words)) & (nxt >= 0))
        state = np.where(live, np.where(nxt >= 0, nxt, tables.end), tables.end)
    ok &= state == tables.end
    valid = float(ok.mean())
    if not ok.any():
        return {"valid": 0.0, "persona_entropy": float("nan"), "shares": {}}
    idx = np.flatnonzero(ok)
    dreams = TextCorpus(sim.fmt.grammar if grammar is None else grammar, mixture, 0, words[idx].astype(np.int16), lengths[idx].astype(np.int16),
                        np.full(len(idx), mixture.personas[0], np.int8))  # fmt: skip
    post = text_ideal(dreams).posterior[np.arange(len(idx)), dreams.lengths]  # after the whole document
    mean = post.mean(0)
    entropy = float(-(mean * np.log(np.maximum(mean, 1e-300))).sum())
    return {"valid": valid, "persona_entropy": entropy, "shares": dict(zip(mixture.names, map(float, mean)))}
