"""Shared helpers for world tests: jitted functions cached per world, scripted rollouts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.world import ACTIONS, reset, step

ACTION_IDS = {name: i for i, name in enumerate(ACTIONS)}
jit_reset = jax.jit(reset)
jit_step = jax.jit(step)


def act(params, moves, seed=0, state=None):
    """Play a list of action names (or ids); return (states, steps) after each move."""
    key = jax.random.PRNGKey(seed)
    if state is None:
        key, k = jax.random.split(key)
        state = jit_reset(k, params)
    states, steps = [], []
    for m in moves:
        a = ACTION_IDS[m] if isinstance(m, str) else int(m)
        key, k = jax.random.split(key)
        state, st = jit_step(k, state, jnp.int32(a), params)
        states.append(state)
        steps.append(st)
    return states, steps


def events_of(st):
    from simulacra.world import EVENT_NAMES

    return {n for n in EVENT_NAMES if bool(getattr(st.events, n))}


def tree_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))
