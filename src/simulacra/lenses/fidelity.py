"""How good a simulator is, measured against the exact law of its corpus.

* `scores(sim, corpus)` — on held-out episodes of a corpus (same world and mixture as training):
  the model's log-loss per token type next to the ideal simulator's (`simulacra.corpus.ideal`),
  their difference (*excess* log-loss, nats/token: 0 is a perfect simulator, and it cannot be
  negative in expectation), expected calibration error, and KL(ideal ‖ model) of the next-action
  distribution (given that the episode goes on), averaged over steps.
* `legality(sim, dreams)` — of dreamed episodes (`Simulator.dream`), the fraction of
  transitions `(s_t, a_t, r_t, s_{t+1}, end?)` that the world's law cannot produce. A transition
  is legal when both states decode to states of this world (`world.tokens.is_valid`) and some
  outcome of `law(s_t, a_t)` with positive probability gives exactly `s_{t+1}`, the reward
  token `r_t`, and the END (or its absence) that follows. A malformed row (a token of the wrong
  kind where an action, reward or END belongs) makes its transition illegal and ends the count
  for that episode.
* `compare(dreamed, real)` — how far dreamed returns and events are from a real corpus's:
  two-sample Kolmogorov–Smirnov on returns and on lengths, and per event a test of the share of
  episodes in which it happens (chi-square, or Fisher's exact test on small counts), each with
  its p-value (scipy.stats).

The ideal is that of the unconditioned format: `scores` needs a model without CHAR or RTG slots.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from simulacra.corpus.ideal import Ideal, compute_ideal, token_logloss
from simulacra.corpus.tokens import (
    ACTION,
    END,
    REWARD,
    STATE,
    TYPE_NAMES,
    bin_value,
    encode,
    is_action_token,
    is_end_token,
    is_reward_token,
    is_state_token,
    reward_bin,
    token_action,
    token_reward_bin,
    token_terminated,
)
from simulacra.world.core import EVENT_NAMES, law
from simulacra.world.tokens import Vocab, decode, is_valid, state_tokens

ECE_BINS = 15


def token_stats(sim, tokens: np.ndarray, batch: int = 64):
    """Per position: the model's -log p(actual), top-1 confidence and correctness, and its
    distribution over the five actions (renormalised)."""
    act_ids = jnp.asarray(sim.fmt.local_ids(*Vocab.ACTION))

    @jax.jit
    def run(params, toks):
        logits, _ = sim.model.apply(params, toks[:, :-1])
        logp = jax.nn.log_softmax(logits, axis=-1)
        target = toks[:, 1:]
        nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
        conf = jnp.exp(jnp.max(logp, axis=-1))
        correct = jnp.argmax(logp, axis=-1) == target
        acts = jax.nn.softmax(logits[..., act_ids], axis=-1)
        pad = lambda x: jnp.concatenate([jnp.zeros_like(x[:, :1]), x], axis=1)  # noqa: E731
        return pad(nll), pad(conf), pad(correct), pad(acts)

    local = sim.fmt.to_local(tokens)
    outs = []
    for i in range(0, len(local), batch):
        chunk = local[i : i + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[:1], batch - n, 0)])
        outs.append([np.asarray(x)[:n] for x in run(sim.params, jnp.asarray(chunk))])
    return [np.concatenate(x) for x in zip(*outs)]


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of top-1 predictions: the mean over equal-width confidence bins of |accuracy -
    confidence|, weighted by the share of predictions in each bin."""
    confidence, correct = np.asarray(confidence, float).ravel(), np.asarray(correct, float).ravel()
    if confidence.size == 0:
        return float("nan")
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(total)


def scores(sim, corpus, ideal: Ideal | None = None, batch: int = 64) -> dict:
    """Excess log-loss by token type, calibration and KL(ideal ‖ model) on actions, over the
    episodes of `corpus` (held out from training)."""
    fmt = sim.fmt
    if fmt.character or fmt.rtg:
        raise ValueError("fidelity scores compare with the ideal of the unconditioned format; this model has CHAR or RTG slots")
    if corpus.params != fmt.params:
        raise ValueError(f"the corpus's world {corpus.params.name!r} is not the model's world {fmt.params.name!r}")
    ideal = ideal if ideal is not None else compute_ideal(corpus)
    enc = encode(corpus, fmt)
    ideal_loss, _, scored = token_logloss(corpus, ideal, fmt)
    nll, conf, correct, acts = token_stats(sim, enc["tokens"], batch)
    types = enc["types"]
    out: dict = {"by_type": {}}
    for ty in (STATE, ACTION, REWARD, END, None):
        sel = scored if ty is None else scored & (types == ty)
        name = "all" if ty is None else TYPE_NAMES[ty]
        m, i = float(nll[sel].mean()), float(ideal_loss[sel].mean())
        out["by_type"][name] = {
            "model": m,
            "ideal": i,
            "excess": m - i,
            "tokens": int(sel.sum()),
            "ece": expected_calibration_error(conf[sel], correct[sel]),
        }
    # KL(ideal ‖ model) of the action distribution at each live step
    rows, t = np.nonzero(corpus.mask)
    q = acts[rows, fmt.action_pos(t)]
    p = ideal.action_probs[rows, t]
    kl = np.sum(np.where(p > 0, p * (np.log(np.maximum(p, 1e-30)) - np.log(np.maximum(q, 1e-30))), 0.0), axis=-1)
    out["action_kl"] = float(kl.mean())
    out["ece"] = out["by_type"]["all"]["ece"]
    out["n_episodes"] = corpus.n_episodes
    return out


# -- dreams ----------------------------------------------------------------------------------------


def _structure(tokens: np.ndarray, fmt) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the number of transitions to check, whether the last of them is malformed, and
    the position of END (-1 if none)."""
    n, length = tokens.shape
    types = fmt.types()
    is_end = is_end_token(tokens)
    end = np.where(is_end.any(1), np.argmax(is_end, axis=1), -1)
    kind_ok = np.ones_like(tokens, bool)
    act = types == ACTION
    rew = types == REWARD
    st = types == STATE
    kind_ok[:, act] = is_action_token(tokens[:, act])
    kind_ok[:, rew] = is_reward_token(tokens[:, rew])
    kind_ok[:, st] = is_state_token(tokens[:, st])
    pos = np.arange(length)[None, :]
    stop = np.where(end >= 0, end, length)
    bad = ~kind_ok & (pos < stop[:, None])
    # END only where an action may stand (after a whole state)
    end_misplaced = (end >= 0) & ~(act | (types == END))[np.maximum(end, 0)]
    first_bad = np.where(bad.any(1), np.argmax(bad, axis=1), length)
    first_bad = np.where(end_misplaced, np.minimum(first_bad, end), first_bad)
    first_bad = np.where(end < 0, np.minimum(first_bad, length - 1), first_bad)  # no END at all
    a0 = fmt.action_pos(0)
    malformed = first_bad < length
    # transition t covers positions action_pos(t) .. action_pos(t+1) - 1
    t_bad = np.maximum(first_bad - a0, 0) // fmt.block
    n_ok = np.where(end >= 0, (end - a0) // fmt.block, 0)
    n_trans = np.where(malformed, np.minimum(t_bad + 1, fmt.params.horizon), n_ok)
    return n_trans.astype(np.int64), malformed, end


def legality(sim, dreams: dict, world=None) -> dict:
    """Check dreamed episodes against the world's law. Returns the fraction of illegal
    transitions and per-episode arrays: `n_transitions`, `n_illegal`, `malformed`, `return`
    (dreamed rewards summed over the checked transitions), `length`, and `events` (N, E)
    counts of each event in the legal transitions (the outcome of the law that matches)."""
    fmt = sim.fmt
    world = world or fmt.params
    tokens = np.asarray(dreams["tokens"], np.int64)
    n = tokens.shape[0]
    horizon, s = world.horizon, fmt.state_len
    n_trans, malformed, end = _structure(tokens, fmt)
    scene = np.asarray(dreams["scene"], np.int32)
    padded = np.concatenate([tokens, np.zeros((n, fmt.block), np.int64)], axis=1)
    t = np.arange(horizon)
    cur = np.stack([padded[:, fmt.step_start(u) : fmt.step_start(u) + s] for u in t], axis=1)  # (N, T, S)
    nxt = np.stack([padded[:, fmt.step_start(u + 1) : fmt.step_start(u + 1) + s] for u in t], axis=1)
    actions = token_action(padded[:, fmt.action_pos(t)])
    rewards = token_reward_bin(padded[:, fmt.reward_pos(t)])
    last = (t[None, :] == n_trans[:, None] - 1) & ~malformed[:, None]
    end_tok = tokens[np.arange(n), np.maximum(end, 0)]
    legal, events = _check(world)(
        jnp.asarray(scene),
        jnp.asarray(np.clip(cur, 0, Vocab.SIZE - 1).astype(np.int32)),
        jnp.asarray(np.clip(nxt, 0, Vocab.SIZE - 1).astype(np.int32)),
        jnp.asarray(np.clip(actions, 0, 4).astype(np.int32)),
        jnp.asarray(rewards.astype(np.int32)),
        jnp.asarray(last),
        jnp.asarray(token_terminated(end_tok)),
    )
    legal, events = np.asarray(legal), np.asarray(events)
    counted = t[None, :] < n_trans[:, None]
    bad_row = malformed[:, None] & (t[None, :] == n_trans[:, None] - 1)
    legal = legal & ~bad_row & counted
    n_illegal = (counted & ~legal).sum(1)
    value = np.where(counted & ~bad_row, bin_value(rewards), 0.0)
    total = int(counted.sum())
    return {
        "illegal_fraction": float(n_illegal.sum() / max(total, 1)),
        "legal_fraction": float(1 - n_illegal.sum() / max(total, 1)),
        "transitions": total,
        "malformed_episodes": int(malformed.sum()),
        "n_transitions": n_trans,
        "n_illegal": n_illegal,
        "malformed": malformed,
        "return": value.sum(1),
        "length": np.where(malformed, -1, n_trans),
        "events": (events & legal[..., None]).sum(1),
    }


_CHECKS: dict = {}


def _check(world):
    if world in _CHECKS:
        return _CHECKS[world]

    def one(scene, cur, nxt, action, rbin, last, terminated_tok):
        state = decode(scene, cur, world)
        states, steps, probs = law(state, action, world)
        toks = jax.vmap(lambda st: state_tokens(st, world))(states)  # (2, S)
        same_state = jnp.all(toks == nxt[None, :], axis=-1)
        r = reward_bin(steps.reward)
        ended = steps.terminated | steps.truncated
        end_ok = jnp.where(last, ended & (steps.terminated == terminated_tok), ~ended)
        match = (probs > 0) & same_state & (r == rbin) & end_ok
        ok = is_valid(scene, cur, world) & is_valid(scene, nxt, world) & match.any()
        first = jnp.argmax(match)
        return ok, steps.events.as_array()[first]

    fn = jax.jit(jax.vmap(jax.vmap(one, (None, 0, 0, 0, 0, 0, None)), (0, 0, 0, 0, 0, 0, 0)))
    _CHECKS[world] = fn
    return fn


def _rate_test(a: np.ndarray, b: np.ndarray) -> dict:
    """Share of episodes with the event in two samples, and a test of equal shares."""
    table = np.array([[a.sum(), len(a) - a.sum()], [b.sum(), len(b) - b.sum()]])
    if table.sum(0).min() == 0:
        p = 1.0  # the event never (or always) happens in both: nothing to tell apart
    elif table.min() < 5:
        p = float(stats.fisher_exact(table).pvalue)
    else:
        p = float(stats.chi2_contingency(table).pvalue)
    return {"dreamed": float(a.mean()), "real": float(b.mean()), "pvalue": p}


def compare(dreamed: dict, corpus) -> dict:
    """Dreamed episodes (from `legality`) vs a real corpus: KS on returns and lengths, and a test
    per event of the share of episodes in which it happens. Malformed dreams are left out of the
    distributions (their share is reported by `legality`)."""
    keep = ~dreamed["malformed"]
    if not keep.any():
        raise ValueError("no well-formed dreamed episode to compare (every dream is malformed)")
    ret = dreamed["return"][keep]
    real = corpus.episodes
    # both on the token grid, so that rounding is not mistaken for a difference
    real_ret = bin_value(reward_bin(np.asarray(real.return_, float)))
    ks = stats.ks_2samp(ret, real_ret)
    ks_len = stats.ks_2samp(dreamed["length"][keep], real.length)
    real_events = real.events.any(1)
    out = {
        "return": {"dreamed_mean": float(ret.mean()), "real_mean": float(real_ret.mean()), "ks": float(ks.statistic), "pvalue": float(ks.pvalue)},
        "length": {"dreamed_mean": float(dreamed["length"][keep].mean()), "real_mean": float(real.length.mean()), "ks": float(ks_len.statistic), "pvalue": float(ks_len.pvalue)},
        "events": {},
        "n_dreamed": int(keep.sum()),
        "n_real": int(corpus.n_episodes),
    }
    for i, name in enumerate(EVENT_NAMES):
        out["events"][name] = _rate_test(dreamed["events"][keep, i] > 0, real_events[:, i])
    return out
