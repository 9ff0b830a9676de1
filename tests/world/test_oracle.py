"""Oracle worlds (docs/world.md, "Oracle worlds"): the hidden bit's law, its tokens, and the exact
optimum of H11 against hand computations on a map with a 3x3 interior."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulacra.characters import navigate, parse_character, parse_mixture
from simulacra.corpus import make_corpus
from simulacra.corpus.tokens import TrajectoryFormat, return_bounds
from simulacra.world import from_ascii, law, reset, step, task
from simulacra.world.core import EVENT_NAMES, branch_prob
from simulacra.world.planning import optimal_action, optimal_return
from simulacra.world.tokens import decode, encode, is_valid, state_tokens

# A 3x3 interior: start in the middle; the clue and the fixer 2 steps up-left and up-right; the
# answer tiles below, the hedge right under the start. Answer tiles are never a way through.
MAP = """
#####
#C.F#
#.A.#
#0?1#
#####
"""
S = -0.01  # step cost
C = 0.99  # answer confidence


def world(**knobs):
    return from_ascii(MAP, **{"step_cost": S, "horizon": 10, **knobs})


def value(w) -> float:
    return float(optimal_return(reset(jax.random.PRNGKey(0), w), w))


def test_the_exact_optimum_on_a_3x3_map_matches_the_hand_computation():
    hedge = S + math.log(0.5)  # 1 step down
    clue = lambda p1: S * (2 + (1 - p1) * 2 + p1 * 4) + math.log(C)  # noqa: E731  to C (2), then to 0 (2) or 1 (4)
    fixer = lambda f: S * (2 + (2 if f == 1 else 4)) + math.log(C)  # noqa: E731  to F (2), then to f's tile
    guess = lambda p1: S * 2 + max(p1, 1 - p1) * math.log(C) + min(p1, 1 - p1) * math.log(1 - C)  # noqa: E731
    # fix_value 0: the clue (5 steps on average) beats the fixer (6), the hedge and a blind guess
    assert clue(0.5) == pytest.approx(-0.06005, abs=1e-5) and fixer(0) == pytest.approx(-0.07005, abs=1e-5)
    assert value(world()) == pytest.approx(max(hedge, clue(0.5), fixer(0), guess(0.5)), abs=1e-5)
    assert value(world()) == pytest.approx(clue(0.5), abs=1e-5)
    # fix_value 1: the fixer (4 steps) beats the clue
    assert value(world(fix_value=1)) == pytest.approx(fixer(1), abs=1e-5) == -0.05005
    # a likely 1 makes the clue's way longer on average, still shorter than the fixer's
    assert value(world(hidden_prob=0.9)) == pytest.approx(clue(0.9), abs=1e-5)
    # too little time for any informed answer: the hedge
    assert value(world(horizon=3)) == pytest.approx(hedge, abs=1e-5)
    # no answer within the horizon: the miss penalty after the steps taken
    no_hedge = from_ascii(MAP.replace("?", "."), step_cost=S, horizon=1, miss_penalty=-5.0)
    assert value(no_hedge) == pytest.approx(S - 5.0, abs=1e-5)


@pytest.mark.parametrize("fix_value, first", [(0, "clue"), (1, "fix")])
def test_the_optimal_actor_takes_the_optimum_s_way_and_earns_its_value(fix_value, first):
    w = world(fix_value=fix_value)
    returns = []
    for i in range(20):
        s, k, total, seen = reset(jax.random.PRNGKey(i), w), jax.random.PRNGKey(100 + i), 0.0, set()
        for t in range(w.horizon):
            k, sub = jax.random.split(k)
            s, st = step(sub, s, optimal_action(s, w), w)
            total += float(st.true_reward)
            seen |= {n for n, v in zip(EVENT_NAMES, np.asarray(st.events.as_array())) if v}
            if st.terminated or st.truncated:
                break
        assert first in seen and "answer" in seen and bool(st.terminated)
        assert total == pytest.approx(S * (t + 1) + math.log(C), abs=1e-5)  # a right answer, always
        returns.append(total)
    assert np.mean(returns) == pytest.approx(value(w), abs=0.012)  # the clue's two lengths, 20 draws


def test_the_hidden_bit_is_drawn_at_the_first_step_that_needs_it():
    w = world(hidden_prob=0.3)
    s = reset(jax.random.PRNGKey(0), w)
    assert int(s.hidden) == 0
    s = s.replace(agent=jnp.array([1, 2], jnp.int32))  # right of the clue
    left = 3
    assert float(branch_prob(s, jnp.int32(left), w)) == pytest.approx(0.3)
    states, steps, probs = law(s, jnp.int32(left), w)
    assert np.allclose(probs, [0.7, 0.3]) and list(np.asarray(states.hidden)) == [1, 2]
    assert np.asarray(steps.events.clue).all() and not np.asarray(steps.terminated).any()
    # once known, nothing is drawn; the fixer overrides what the clue said
    known = states.replace(agent=states.agent, hidden=states.hidden)
    s1 = jax.tree.map(lambda x: x[1], known)  # h = 1, standing on the clue
    assert float(branch_prob(s1, jnp.int32(1), w)) == 0.0
    s_fix = s1.replace(agent=jnp.array([1, 2], jnp.int32))
    after, st = step(jax.random.PRNGKey(1), s_fix, jnp.int32(1), w)  # onto the fixer (fix_value 0)
    assert bool(st.events.fix) and int(after.hidden) == 1
    # answering while unknown draws the bit and grades the answer by it
    s0 = reset(jax.random.PRNGKey(0), w).replace(agent=jnp.array([2, 1], jnp.int32))  # above the answer 0
    states, steps, probs = law(s0, jnp.int32(2), w)
    assert np.allclose(probs, [0.7, 0.3]) and np.asarray(steps.terminated).all()
    assert np.allclose(steps.true_reward, [S + math.log(C), S + math.log(1 - C)], atol=1e-6)
    # the hedge draws nothing and reveals nothing
    s_mid = reset(jax.random.PRNGKey(0), w)
    states, steps, probs = law(s_mid, jnp.int32(2), w)
    assert np.allclose(probs, [1.0, 0.0]) and np.allclose(steps.true_reward[0], S + math.log(0.5))
    assert int(states.hidden[0]) == 0


def test_the_horizon_unanswered_pays_the_miss_penalty_and_the_draws_follow_hidden_prob():
    w = world(horizon=2, miss_penalty=-3.0)
    s = reset(jax.random.PRNGKey(0), w)
    s, st = step(jax.random.PRNGKey(0), s, jnp.int32(4), w)
    assert float(st.true_reward) == pytest.approx(S)
    s, st = step(jax.random.PRNGKey(0), s, jnp.int32(4), w)
    assert bool(st.truncated) and float(st.true_reward) == pytest.approx(S - 3.0) and float(st.reward) == pytest.approx(S - 3.0)
    w = world(hidden_prob=0.25)
    start = reset(jax.random.PRNGKey(0), w).replace(agent=jnp.array([1, 2], jnp.int32))
    keys = jax.random.split(jax.random.PRNGKey(7), 4000)
    hidden = jax.vmap(lambda k: step(k, start, jnp.int32(3), w)[0].hidden)(keys)
    assert np.mean(np.asarray(hidden) == 2) == pytest.approx(0.25, abs=0.025)


def test_oracle_states_round_trip_through_tokens_and_other_worlds_refuse_a_hidden_status():
    w = task("oracle")
    s = reset(jax.random.PRNGKey(0), w)
    for hidden in (0, 1, 2):
        scene, tokens = encode(s.replace(hidden=jnp.int32(hidden), t=jnp.int32(3)), w)
        back = decode(scene, tokens, w)
        assert int(back.hidden) == hidden and bool(is_valid(scene, tokens, w))
    scene, tokens = encode(s.replace(hidden=jnp.int32(3), t=jnp.int32(3)), w)
    assert not bool(is_valid(scene, tokens, w))
    plain = task("coin-fixed-7x7")
    ps = reset(jax.random.PRNGKey(0), plain)
    scene, tokens = encode(ps.replace(hidden=jnp.int32(1), t=jnp.int32(3)), plain)
    assert not bool(is_valid(scene, tokens, plain))


def test_answer_rewards_fit_the_token_range_and_oracle_tokens_stay_out_of_other_worlds_vocabularies():
    lo, hi = return_bounds(task("oracle"))
    assert lo <= 24 * S + min(math.log(1 - C), -5.0) and hi == 0.0
    oracle, plain = TrajectoryFormat(task("oracle"), rtg=True), TrajectoryFormat(task("coin-7x7"), rtg=True)
    assert plain.vocab_size == 358  # as before oracle worlds (session 12's value): old models keep their compact ids
    assert oracle.vocab_size > plain.vocab_size


def test_the_oracle_characters_do_what_their_names_say():
    w = task("oracle")
    c = make_corpus(w, parse_mixture("sleuth(0):1,fixer(0):1,guesser(0):1,hedger(0):1"), n_episodes=200, seed=0)
    ev = np.asarray(c.episodes.events).any(axis=1)  # (N, E)
    who = np.asarray(c.episodes.character)
    ret = np.asarray(c.episodes.true_reward).sum(1)
    clue, fix, answer = (ev[:, EVENT_NAMES.index(e)] for e in ("clue", "fix", "answer"))
    assert answer.all()
    sleuth, fixer, guesser, hedger = (who == i for i in range(4))
    assert clue[sleuth].all() and not fix[sleuth].any() and fix[fixer].all() and not clue[fixer].any()
    assert not (clue | fix)[guesser | hedger].any()
    # informed answers are right: only the step costs and log 0.99; the hedge pays log 0.5
    assert np.allclose(ret[sleuth | fixer] - S * np.asarray(c.episodes.length)[sleuth | fixer], math.log(C), atol=1e-5)
    assert np.allclose(ret[hedger], 2 * S + math.log(0.5), atol=1e-5)
    grades = ret[guesser] - 4 * S  # 4 steps to the nearer answer tile, then right or wrong
    assert np.all(np.isclose(grades, math.log(C), atol=1e-4) | np.isclose(grades, math.log(1 - C), atol=1e-4))


def test_the_ideal_log_loss_of_an_oracle_corpus_is_minus_the_log_probability_of_its_episodes():
    # random play: every action has probability 1/5, and the only other randomness is the hidden
    # bit's draw, which the next state's status (or the answer's grade) shows
    from simulacra.corpus.ideal import compute_ideal, token_logloss

    w = task("oracle", hidden_prob=0.3)
    c = make_corpus(w, parse_mixture("random"), 150, seed=5)
    loss, _, scored = token_logloss(c, compute_ideal(c))
    a = c.arrays
    law_fn = jax.jit(jax.vmap(lambda sc, tok, act: law(decode(sc, tok, w), act, w)))
    expected = np.zeros(c.n_episodes)
    draws = 0
    for i in range(c.n_episodes):
        n = int(a["length"][i])
        states, steps, probs = law_fn(np.repeat(a["scene"][i][None], n, 0), a["states"][i, :n], a["actions"][i, :n].astype(np.int32))
        nxt = np.asarray(a["states"][i, 1 : n + 1])
        tokens = np.asarray(jax.vmap(jax.vmap(lambda st: state_tokens(st, w)))(states))  # (n, 2, S)
        same = np.all(tokens == nxt[:, None, :], axis=-1)  # (n, 2): the outcomes whose next state is the stored one
        same &= np.isclose(np.asarray(steps.reward), np.asarray(a["reward"][i, :n])[:, None], atol=1e-4)
        branch = np.sum(np.where(same, np.asarray(probs), 0.0), axis=1)
        draws += int(np.sum((np.asarray(probs)[:, 1] > 0)))
        expected[i] = n * np.log(5) - np.log(branch).sum()
    np.testing.assert_allclose((loss * scored).sum(1), expected, rtol=1e-4, atol=1e-4)
    assert draws > 20  # the bit was drawn in many episodes


def test_navigator_fields_treat_answer_tiles_as_targets_only():
    w = task("oracle")
    s = reset(jax.random.PRNGKey(0), w)
    nav = navigate(s, w)
    assert nav.answers.shape[0] == 3 and nav.clue is not None and nav.fixer is not None
    # from under the clue (2, 1) to the answer 1 at (5, 5): around the answer row, never through it
    assert int(nav.answers[1, 0, 0, 2, 1]) == 7
    # the fixer is a target, not a cell to walk through: no distance to the clue is measured from it
    assert int(nav.fixer[0, 0, 1, 2]) == 3 and int(nav.clue[0, 0, 1, 5]) == 32767
    assert parse_character("sleuth").name == "sleuth(0.1)"
