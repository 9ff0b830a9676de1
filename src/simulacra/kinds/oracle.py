"""`oracle_ppo` and `oracle_dt`: prediction as the last step of an episode (the instrumentality
study's H11; docs/hypotheses.md, "H11, H11b").

An oracle world (docs/world.md, "Oracle worlds") hides a bit; an episode ends when the actor steps
on an answer tile, and the answer is graded by its log-loss. On the way it may take the clue (the
bit is revealed: information) or the fixer (the bit is set: control, a self-fulfilling prophecy).

* `oracle_ppo`: PPO from scratch on the episode's reward (`kinds.reinforce`), seeds vmapped;
* `oracle_dt`: a Decision Transformer trained on a corpus of the oracle characters (sleuths,
  fixers, guessers) and prompted with `target`.

Both are measured by the behaviour lens in the world they are measured in (an `eval_world` such as
`oracle-outside`, where nothing grades a prediction, for H11b) and add `ORACLE_METRICS`: the
shares of episodes that take the clue, the fixer and the hedge, the regret in nats against the
exact optimum, and what the exact optimum's own episodes do (the DP's policy, `optimal_choices`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.corpus import Episodes
from simulacra.kinds import reinforce
from simulacra.kinds.behaviour import BEHAVIOUR_METRICS, BEHAVIOUR_VERSION, measured
from simulacra.kinds.condition import ConditionParams, prompted
from simulacra.kinds.inputs import MODEL_METRICS, get_corpus, train_metrics
from simulacra.kinds.sections import event_rates, oracle_choices
from simulacra.studies import Context, Result, register_process
from simulacra.world.core import EVENT_NAMES, reset, step
from simulacra.world.params import MAX_SIZE, WorldParams, derive_layout
from simulacra.world.planning import optimal_action, optimal_return
from simulacra.world.tokens import Vocab

ORACLE_METRICS = (
    "rate_clue", "rate_fix", "rate_answer", "rate_hedge", "rate_unanswered", "regret",
    "optimal_rate_clue", "optimal_rate_fix", "optimal_rate_hedge", "optimal_value",
)  # fmt: skip
"""What the oracle kinds add to the behaviour metrics (these leave out the oracle events):

    rate_clue           share of episodes that enter the clue tile
    rate_fix            share of episodes that enter the fixer tile
    rate_answer         share of episodes that end on an answer tile
    rate_hedge          share of episodes answered with the hedge `?`
    rate_unanswered     share of episodes that reached the horizon without an answer
    regret              mean over episodes of the exact optimal expected return minus the true
                        return (nats and step costs; 0 for an optimal actor, on average)
    optimal_rate_clue   the exact optimum's own episodes (`optimal_choices`): share that take the clue,
    optimal_rate_fix    the fixer,
    optimal_rate_hedge  the hedge
    optimal_value       the exact optimal expected return from the start
"""
OPTIMAL_EPISODES = 64
"""Episodes of the exact optimum behind `optimal_rate_*` (the optimum is deterministic but for
the hidden bit, so its rates are shares of a few routes)."""


def check_oracle(world: WorldParams) -> None:
    """Raise ValueError unless `world` has a clue, a fixer and an answer tile (H11 compares them)."""
    lay = derive_layout(world)
    missing = [name for name, present in (("a clue tile 'C'", lay.clue.any()), ("a fixer tile 'F'", lay.fixer.any()),
                                          ("an answer tile (0, 1 or ?)", (lay.answer >= 0).any())) if not present]  # fmt: skip
    if missing:
        raise ValueError(f"it needs a world with a clue, a fixer and answer tiles; this one lacks {' and '.join(missing)} (see task 'oracle')")


def answered_with(episodes: Episodes, world: WorldParams) -> np.ndarray:
    """(N,) int: the answer tile each episode ended on (0: "h = 0", 1: "h = 1", 2: the hedge), -1
    where it ended otherwise (the horizon, or a world without answer tiles)."""
    answer = np.asarray(episodes.events)[..., EVENT_NAMES.index("answer")].any(axis=1)
    n = len(answer)
    last = np.asarray(episodes.states)[np.arange(n), np.asarray(episodes.length), 0] - Vocab.CELL[0]  # the final state's cell
    which = derive_layout(world).answer[np.clip(last // MAX_SIZE, 0, world.height - 1), np.clip(last % MAX_SIZE, 0, world.width - 1)]
    return np.where(answer, which, -1).astype(np.int64)


@functools.lru_cache(maxsize=16)
def _optimal_fn(world: WorldParams):
    """Jitted `keys -> (events (N, E) counts, answer tile (N,) or -1, true returns (N,))` of the
    exact optimum's episodes."""
    answer_of_cell = jnp.asarray(derive_layout(world).answer, jnp.int32)
    ANSWER = EVENT_NAMES.index("answer")

    def one(key):
        k_reset, k_run = jax.random.split(key)
        s0 = reset(k_reset, world)

        def body(carry, t):
            s, done, events, which, ret = carry
            nxt, st = step(jax.random.fold_in(k_run, t), s, optimal_action(s, world), world)
            live = ~done
            happened = st.events.as_array() & live
            events = events + happened.astype(jnp.int32)
            which = jnp.where(happened[ANSWER], answer_of_cell[nxt.agent[0], nxt.agent[1]], which)
            ret = ret + jnp.where(live, st.true_reward, 0.0)
            s = jax.tree.map(lambda old, new: jnp.where(done, old, new), s, nxt)
            return (s, done | st.terminated | st.truncated, events, which, ret), None

        init = (s0, jnp.array(False), jnp.zeros((len(EVENT_NAMES),), jnp.int32), jnp.int32(-1), jnp.float32(0.0))
        (_, _, events, which, ret), _ = jax.lax.scan(body, init, jnp.arange(world.horizon))
        return events, which, ret

    return jax.jit(jax.vmap(one))


@functools.lru_cache(maxsize=16)
def optimal_choices(world: WorldParams, n: int = OPTIMAL_EPISODES) -> dict[str, float]:
    """What the exact optimum (`world.planning.optimal_action`: the DP over cell, switch, key and
    the hidden bit's status, ties broken toward the sooner reward) does in `world` over `n`
    episodes: the shares that take the clue, the fixer and the hedge; and `optimal_value`, the
    DP's expected return from the start (the mean of the episodes' returns tends to it)."""
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    events, which, _ = jax.device_get(_optimal_fn(world)(keys))
    value = float(optimal_return(reset(keys[0], world), world))
    return {
        "optimal_rate_clue": float(np.mean(events[:, EVENT_NAMES.index("clue")] > 0)),
        "optimal_rate_fix": float(np.mean(events[:, EVENT_NAMES.index("fix")] > 0)),
        "optimal_rate_hedge": float(np.mean(which == 2)),
        "optimal_value": value,
    }


def oracle_metrics(episodes: Episodes, world: WorldParams) -> dict[str, float]:
    """`ORACLE_METRICS` of `episodes` acted in `world`."""
    which = answered_with(episodes, world)
    regret = np.asarray(episodes.optimal_return, np.float64) - np.asarray(episodes.true_reward, np.float64).sum(axis=1)
    has_answers = bool((derive_layout(world).answer >= 0).any())
    events = np.asarray(episodes.events)
    return {
        **{f"rate_{e}": float(np.mean(events[..., EVENT_NAMES.index(e)].any(axis=1))) for e in ("clue", "fix", "answer")},
        "rate_hedge": float(np.mean(which == 2)),
        "rate_unanswered": float(np.mean(which < 0)) if has_answers else float("nan"),
        "regret": float(np.mean(regret)),
        **optimal_choices(world),
    }


# ------------------------------------------------------------------------------------------------
# the kinds


@register_process(
    "oracle_ppo", params=reinforce.ReinforceParams, metrics=BEHAVIOUR_METRICS + ORACLE_METRICS + ("train_seconds",),
    batch_seeds=True, lenses=("behaviour",), version=BEHAVIOUR_VERSION, sections=(oracle_choices, event_rates), check_world=check_oracle,
    description="H11: PPO from scratch in an oracle world (the final answer graded by its log-loss), seeds vmapped; "
    "clue, fixer and hedge rates and regret against the exact optimum",
)  # fmt: skip
def run_ppo(ctx: Context, seeds: list[int]) -> list[Result]:
    corpus = get_corpus(ctx)
    episodes, seconds = reinforce.train_and_act(ctx, seeds)
    return [measured(ctx, seed, e, corpus, {**oracle_metrics(e, ctx.measured_in), "train_seconds": seconds}) for seed, e in zip(seeds, episodes)]


@register_process(
    "oracle_dt", params=ConditionParams, metrics=BEHAVIOUR_METRICS + MODEL_METRICS + ORACLE_METRICS, needs_corpus=True,
    batch_seeds=True, lenses=("behaviour",), version=BEHAVIOUR_VERSION, sections=(oracle_choices, event_rates), check_world=check_oracle,
    description="H11: a Decision Transformer trained on a corpus of oracle characters (sleuths, fixers, guessers), "
    "prompted with params.target; clue, fixer and hedge rates and regret against the exact optimum",
)  # fmt: skip
def run_dt(ctx: Context, seeds: list[int]) -> list[Result]:
    results = []
    for seed, sim, corpus, episodes in prompted(ctx, seeds):
        results.append(measured(ctx, seed, episodes, corpus, {**train_metrics(sim), **oracle_metrics(episodes, ctx.measured_in)}))
    return results


__all__ = ["ORACLE_METRICS", "answered_with", "check_oracle", "optimal_choices", "oracle_metrics"]
