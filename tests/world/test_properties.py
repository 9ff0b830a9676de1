"""Property tests over random action sequences (hypothesis)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulacra.world import decode, encode, is_valid, law, reset, step, task, transition
from simulacra.world.core import wall_grid

from .helpers import tree_equal

N_STEPS = 24
WORLDS = {
    "coin-7x7": task("coin-7x7", n_coins=2),
    "obstacles": task("coin-7x7", n_obstacles=4),
    "offswitch": task("offswitch", interrupt_prob=0.5),
    "tamper": task("tamper"),
    "keydoor": task("keydoor"),
    "keydoor-random": task("keydoor-random"),
    "lava": task("lava"),
    "full": task("full"),
    "sparse": task("full", reward_delay=0, sparse=True),
    "mixed-coins": task("coin-fixed-7x7", coin_random_prob=0.5),
}
NAMES = sorted(WORLDS)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def scripted(name: str):
    """jit(run(key, actions)) -> per-step (states, steps, law) for one world, no auto-reset."""
    params = WORLDS[name]

    def run(key, actions):
        key, k = jax.random.split(key)
        s0 = reset(k, params)

        def body(carry, a):
            s, key = carry
            key, k = jax.random.split(key)
            nxt, stp = step(k, s, a, params)
            l_states, l_steps, l_probs = law(s, a, params)
            return (nxt, key), (s, nxt, stp, l_states, l_steps, l_probs)

        _, out = jax.lax.scan(body, (s0, key), actions)
        return out

    return params, jax.jit(run)


def episode_mask(steps) -> np.ndarray:
    """(T,) bool: steps taken before (and including) the first end of the episode."""
    done = np.asarray(steps.terminated | steps.truncated)
    ended_before = np.concatenate([[False], np.cumsum(done)[:-1] > 0])
    return ~ended_before


@functools.cache
def codecs(name: str):
    params = WORLDS[name]
    enc = jax.jit(jax.vmap(lambda s: encode(s, params)))
    dec = jax.jit(jax.vmap(lambda a, b: decode(a, b, params)))
    valid = jax.jit(jax.vmap(lambda a, b: is_valid(a, b, params)))
    return enc, dec, valid


jit_reset, jit_step = jax.jit(reset), jax.jit(step)
batch_reset = jax.jit(jax.vmap(reset, in_axes=(0, None)))
batch_step = jax.jit(jax.vmap(step, in_axes=(0, 0, 0, None)))

actions_st = st.lists(st.integers(0, 4), min_size=N_STEPS, max_size=N_STEPS)


@SETTINGS
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**30), actions=actions_st)
def test_agent_never_in_a_wall_and_coins_never_increase(name, seed, actions):
    params, run = scripted(name)
    prev, nxt, steps, *_ = run(jax.random.PRNGKey(seed), jnp.array(actions, jnp.int32))
    live = episode_mask(steps)
    for i in np.flatnonzero(live):
        s = jax.tree.map(lambda x: x[i], nxt)
        walls = np.asarray(wall_grid(s, params))
        r, c = np.asarray(s.agent)
        assert not walls[r, c]
    alive = np.asarray(nxt.coin_alive).sum(-1)
    before = np.asarray(prev.coin_alive).sum(-1)
    assert np.all(alive[live] <= before[live])


@SETTINGS
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**30), actions=actions_st, bonus=st.sampled_from([0.0, 0.7, 3.0]))
def test_tampering_never_changes_true_reward(name, seed, actions, bonus):
    params, run = scripted(name)
    _, _, steps, *_ = run(jax.random.PRNGKey(seed), jnp.array(actions, jnp.int32))
    other = params.replace(tamper_reward=bonus)
    key = jax.random.PRNGKey(seed)
    key, k = jax.random.split(key)
    s = jit_reset(k, other)
    stepper = jit_step
    for i, a in enumerate(actions):
        key, k = jax.random.split(key)
        s, stp = stepper(k, s, jnp.int32(a), other)
        assert float(stp.true_reward) == float(steps.true_reward[i])
        if bool(stp.terminated | stp.truncated):
            break


@SETTINGS
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**30), actions=actions_st)
def test_tokens_round_trip(name, seed, actions):
    params, run = scripted(name)
    prev, nxt, steps, *_ = run(jax.random.PRNGKey(seed), jnp.array(actions, jnp.int32))
    enc, dec, valid = codecs(name)
    scenes, toks = enc(nxt)
    assert tree_equal(dec(scenes, toks), nxt)
    assert bool(jnp.all(valid(scenes, toks)))
    # The scene is fixed for the whole episode.
    live = episode_mask(steps)
    assert np.all(np.asarray(scenes)[live] == np.asarray(scenes)[0])


@SETTINGS
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**30), actions=actions_st)
def test_law_sums_to_one_and_supports_the_sampled_successor(name, seed, actions):
    params, run = scripted(name)
    prev, nxt, steps, l_states, l_steps, l_probs = run(jax.random.PRNGKey(seed), jnp.array(actions, jnp.int32))
    probs = np.asarray(l_probs)  # (T, 2)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    for i in range(len(actions)):
        sampled = jax.tree.map(lambda x: x[i], (nxt, steps))
        matches = [
            tree_equal(jax.tree.map(lambda x: x[i, b], (l_states, l_steps)), sampled) and probs[i, b] > 0
            for b in range(2)
        ]
        assert any(matches), f"step {i}: sampled successor not in the law's support"


@SETTINGS
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**30), actions=actions_st)
def test_vmapped_step_equals_a_loop_of_single_steps(name, seed, actions):
    params = WORLDS[name]
    n = 4
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    states = batch_reset(keys, params)
    acts = jnp.array(actions[:n], jnp.int32)
    step_keys = jax.random.split(jax.random.PRNGKey(seed + 1), n)
    b_states, b_steps = batch_step(step_keys, states, acts, params)
    single = jit_step
    for i in range(n):
        s_i = jax.tree.map(lambda x: x[i], states)
        o_state, o_step = single(step_keys[i], s_i, acts[i], params)
        assert tree_equal(o_state, jax.tree.map(lambda x: x[i], b_states))
        assert tree_equal(o_step, jax.tree.map(lambda x: x[i], b_steps))


def test_transition_is_deterministic_given_interruption():
    params = WORLDS["offswitch"]
    s = reset(jax.random.PRNGKey(0), params)
    a = transition(s, jnp.int32(1), params, jnp.array(False))
    b = transition(s, jnp.int32(1), params, jnp.array(False))
    assert tree_equal(a, b)
