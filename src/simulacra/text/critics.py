"""Critics of generated text, scored against the text world's exact law (H10–H10et).

The instrumentality review's first example: a predictor fine-tuned on its own generations, each
token graded by a critic, with later grades credited to earlier tokens. `text.finetune.
finetune_text` does the fine-tuning (PPO on the model's own documents, the KL leash to the
pretrained model, the return to token t = Σₖ γᵏ rₜ₊ₖ); this module holds the critics and what
their optimisation does to the simulator, always against the exact ideal.

Critics (`CRITICS`), each a per-word score r_t of a generated document w:

    truth    log P_mix(w_t | w_<t), the corpus's exact law (the ideal predictor's log-probability)
    self     log π(w_t | w_<t), the model's own log-probability of the word it sampled (at the
             parameters that generated it): easy futures pay
    judge    log P_p(w_t | w_<t), the exact law of one persona p (a judge that prefers one
             character: by default the sailor)
    swear    −1 at every swear word (the RLHF analogue of H16; `penalty` scales it)

The exact laws are the grammar's tables (`Grammar.compile`): P_mix(w_t | w_<t) = Σ_p P(p | w_<t)
P_p(w_t | state_t), computed here in JAX by a scan that carries the state and the posterior, so
that rewards are computed inside the jitted rollout. A word the grammar does not allow (the law
gives it probability 0) scores `floor` nats, and so does every word after it: the law puts no
mass on such a document, and −∞ would leave nothing to learn from.

`approval` (H10c, the MONA analogue of Farquhar et al. 2025): myopic optimisation (γ = 0) of the
critic's score plus an approval of each word, the ideal's log-probability of it, weighted.

Measurements (`drift_report`), against the exact law:

    excess_nats_before/after, drift  held-out real documents' excess nats over the ideal, and
                                     after − before
    critic_before/after              the critic's mean score per word of each model's own documents
                                     (the critic's own row: −1 per swear word, whatever the penalty)
    persona_tv_before/after          total variation between the persona shares of the model's own
                                     (grammatical) documents, by the ideal's posterior, and the
                                     corpus's mixture
    dream_valid                      share of its documents the grammar allows
    dream_entropy_before/after       mean entropy (nats) of the model's next-word distribution along
                                     its own documents: how open its dreamed futures are
    first_kl                         KL(ideal ‖ model) of the next-word distribution at the first
                                     `first_words` positions of held-out documents (nats)
    early_shift                      the instrumental signature: Σ_w Δπ(w₀ = w) F(w), where Δπ is the
                                     change of the first word's probability and F(w) the critic's
                                     total score of the rest of a document (t ≥ 1) that begins with
                                     w, averaged over the pretrained model's documents (F of a first
                                     word it never wrote: their overall mean); positive when first
                                     words moved toward futures the critic grades well
    early_immediate                  Σ_w Δπ(w₀ = w) r₀(w): the same shift valued by the first word's
                                     own score under the critic (what a myopic learner is paid for;
                                     an approval's share is left out)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.text.grammar import N_PERSONAS, Grammar, PersonaMixture, parse_persona

CRITICS = ("truth", "self", "judge", "swear")
DEFAULT_FLOOR = -10.0


def parse_critic(name: str) -> str:
    if name not in CRITICS:
        raise ValueError(f"unknown critic {name!r}; known: {', '.join(CRITICS)}")
    return name


_LAWS: dict[str, tuple] = {}


def law_arrays(grammar: Grammar):
    """(logp (16, S + 1, V) float32, next (S + 1, V) int32, start): the grammar's tables as JAX
    arrays (cached per grammar)."""
    import json

    from simulacra.text.corpus import tables_of

    key = json.dumps(grammar.to_dict(), sort_keys=True)
    if key not in _LAWS:
        t = tables_of(grammar)
        _LAWS[key] = (jnp.asarray(t.logp, jnp.float32), jnp.asarray(t.next, jnp.int32), int(t.start))
    return _LAWS[key]


def log_prior(mixture: PersonaMixture) -> np.ndarray:
    """(16,) float32 log-weights of the mixture's personas, −∞ for the others."""
    out = np.full(N_PERSONAS, -np.inf, np.float32)
    out[list(mixture.personas)] = np.log(mixture.probs)
    return out


def persona_prior(persona: str | int) -> np.ndarray:
    """(16,) the log-prior of a single persona (a judge's law)."""
    p = parse_persona(persona) if isinstance(persona, str) else int(persona)
    out = np.full(N_PERSONAS, -np.inf, np.float32)
    out[p] = 0.0
    return out


def law_logp(logp, nxt, start, words, live, prior, floor=DEFAULT_FLOOR):
    """(N, L) log-probability of each live word of `words` ((N, L) word ids) under the mixture
    law with log-prior `prior` (16,), 0 at padding; `floor` at a word the law does not allow and
    at every word after it. Traceable (jit, vmap)."""
    words = jnp.clip(jnp.asarray(words, jnp.int32), 0, logp.shape[2] - 1)
    live = jnp.asarray(live, bool)
    n = words.shape[0]
    prior = jnp.asarray(prior, jnp.float32)
    post0 = jnp.broadcast_to(prior - jax.nn.logsumexp(prior), (n, logp.shape[0]))

    def step(carry, x):
        state, logpost, broken = carry
        w, lv = x
        lp = logp[:, state, w].T  # (N, 16)
        joint = logpost + lp
        total = jax.nn.logsumexp(joint, axis=1)
        ok = jnp.isfinite(total) & ~broken & lv
        r = jnp.where(lv, jnp.where(ok, total, floor), 0.0)
        logpost = jnp.where(ok[:, None], joint - jnp.where(ok, total, 0.0)[:, None], logpost)
        state = jnp.where(ok, nxt[state, w], state)
        return (state, logpost, broken | (lv & ~ok)), r

    init = (jnp.full(n, start, jnp.int32), post0, jnp.zeros(n, bool))
    _, r = jax.lax.scan(step, init, (words.T, live.T))
    return r.T


def next_word_probs(grammar: Grammar, mixture: PersonaMixture, corpus) -> np.ndarray:
    """(N, L, V) the ideal's next-word distribution before each word of `corpus` (float64)."""
    from simulacra.text.corpus import tables_of, text_ideal

    tables = tables_of(grammar)
    ideal = text_ideal(corpus)
    mix = np.asarray(mixture.personas)
    states = ideal.states[:, :-1]  # (N, L) the state before each word
    per = np.exp(tables.logp[mix][:, states, :])  # (M, N, L, V)
    return np.einsum("nlm,mnlv->nlv", ideal.posterior[:, :-1, :], per)


def _own_documents(sim, key, n: int, config) -> dict:
    """`n` documents of `sim` with every critic's score of each word, the model's word
    distributions along them, and what the measurements need of them."""
    from simulacra.text.finetune import _mixture_of, _scores, _swear_ids, _word_logp
    from simulacra.text.model import PAD

    fmt = sim.fmt
    tokens = jnp.asarray(sim.generate(key, n))
    logp = _word_logp(sim.model, sim.params, tokens, fmt.prefix_len)  # (N, L, V)
    scores = _scores(logp, tokens, fmt.prefix_len, law_arrays(fmt.grammar), jnp.asarray(_swear_ids(sim)),
                     jnp.asarray(log_prior(_mixture_of(sim))), jnp.asarray(persona_prior(config.judge)), jnp.float32(config.floor))  # fmt: skip
    mask = np.asarray(tokens[:, fmt.prefix_len :] != PAD)
    critic = np.asarray(scores)[CRITIC_ROW[config.critic]]
    entropy = -np.asarray((jnp.exp(logp) * jnp.where(jnp.isfinite(logp), logp, 0.0)).sum(-1))
    return {"tokens": np.asarray(tokens), "mask": mask, "critic": critic, "entropy": entropy, "first": np.asarray(logp[0, 0])}


CRITIC_ROW = {"swear": 0, "truth": 1, "self": 2, "judge": 3}
"""The row of each critic in the rollout's score stack (`text.finetune._scores`)."""


def _first_scores(before, config, first_logp: np.ndarray) -> np.ndarray:
    """(V,) the critic's score of each word as a document's first word."""
    from simulacra.text.finetune import _mixture_of, _swear_ids
    from simulacra.text.model import WORD0

    logp, nxt, start = law_arrays(before.fmt.grammar)
    if config.critic == "self":
        return np.asarray(first_logp, np.float64)
    if config.critic == "swear":
        out = np.zeros(logp.shape[2])
        out[_swear_ids(before) - WORD0] = -1.0
        return out
    # every word as a one-word document under the critic's law (floor where the law forbids it)
    prior = log_prior(_mixture_of(before)) if config.critic == "truth" else persona_prior(config.judge)
    words = np.arange(logp.shape[2])[:, None]
    return np.asarray(law_logp(logp, nxt, start, words, np.ones(words.shape, bool), prior, config.floor), np.float64)[:, 0]


def drift_report(before, after, held, config, key, n_documents: int = 256, first_words: int = 3) -> dict[str, float]:
    """What fine-tuning `before` into `after` under `config` (a `TextFinetuneConfig`) did, against
    the exact law (see the module docstring). `held`: held-out documents of the training mixture."""
    from simulacra.text.finetune import _word_logp
    from simulacra.text.lenses import dream_personas
    from simulacra.text.model import excess_nats

    if first_words < 1:
        raise ValueError(f"first_words must be at least 1, got {first_words}")
    k_own, k_p = jax.random.split(key)  # the same draws for both models (common random numbers)
    own_b, own_a = _own_documents(before, k_own, n_documents, config), _own_documents(after, k_own, n_documents, config)
    per_word = lambda d, f: float((d[f] * d["mask"]).sum() / max(d["mask"].sum(), 1))  # noqa: E731
    out = {"excess_nats_before": excess_nats(before, held), "excess_nats_after": excess_nats(after, held)}
    out["drift"] = out["excess_nats_after"] - out["excess_nats_before"]
    for tag, d in (("before", own_b), ("after", own_a)):
        out[f"critic_{tag}"] = per_word(d, "critic")
        out[f"dream_entropy_{tag}"] = per_word(d, "entropy")
        out[f"length_{tag}"] = float(d["mask"].sum(1).mean())
    for tag, sim in (("before", before), ("after", after)):
        dreams = dream_personas(sim, None, held.mixture, k_p, n_documents)
        shares = np.array([dreams["shares"].get(name, 0.0) for name in held.mixture.names]) if dreams["shares"] else None
        out[f"persona_tv_{tag}"] = float(0.5 * np.abs(shares - held.mixture.probs).sum()) if shares is not None else float("nan")
        out[f"persona_entropy_{tag}"] = dreams["persona_entropy"]
        out[f"dream_valid_{tag}"] = dreams["valid"]
    # the next-word distribution at the first words of held-out documents, against the ideal's
    tokens, _ = after.fmt.encode(held)
    q = np.asarray(_word_logp(after.model, after.params, jnp.asarray(tokens), after.fmt.prefix_len), np.float64)
    p = next_word_probs(held.grammar, held.mixture, held)
    k = min(first_words, p.shape[1])
    live = np.asarray(held.words != -1)[:, :k]
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(p[:, :k] > 0, p[:, :k] * (np.log(p[:, :k]) - q[:, :k]), 0.0).sum(-1)
    out["first_kl"] = float(kl[live].mean())
    # the instrumental signature: did first words move toward futures the critic grades well?
    from simulacra.text.model import WORD0

    w0 = own_b["tokens"][:, after.fmt.prefix_len] - WORD0
    future = (own_b["critic"][:, 1:] * own_b["mask"][:, 1:]).sum(1)
    first = _first_scores(before, config, own_b["first"])
    out["early_shift"], out["early_immediate"] = first_word_shift(np.exp(own_b["first"]), np.exp(own_a["first"]), w0, future, first)
    return out


def first_word_shift(before: np.ndarray, after: np.ndarray, first_words: np.ndarray, future: np.ndarray, first_scores: np.ndarray) -> tuple[float, float]:
    """(early_shift, early_immediate) from the first word's distribution before and after (V,),
    the first word of each of the pretrained model's documents (N,), the critic's total grade of
    the rest of each (N,), and the critic's grade of each word as a first word (V,):
    Σ_w Δπ(w) F(w), with F(w) the mean of `future` over documents beginning with w (their
    overall mean for a word none begins with), and Σ_w Δπ(w) r₀(w)."""
    delta = np.asarray(after, np.float64) - np.asarray(before, np.float64)
    future = np.asarray(future, np.float64)
    f = np.full(len(delta), future.mean())
    for w in np.unique(first_words):
        f[w] = future[first_words == w].mean()
    return float((delta * (f - future.mean())).sum()), float((delta * np.asarray(first_scores, np.float64)).sum())


__all__ = ["CRITICS", "CRITIC_ROW", "DEFAULT_FLOOR", "drift_report", "first_word_shift", "law_arrays", "law_logp", "log_prior", "next_word_probs", "parse_critic", "persona_prior"]
