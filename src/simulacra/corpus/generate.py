"""Batched corpus generation: N episodes of one world, acted by a mixture of characters.

Each episode draws one character (by the mixture's weights) and runs for at most `horizon`
steps in one jitted `lax.scan`; episodes are `vmap`ped in chunks. Episode i's randomness is
`fold_in(key(seed), i)`, so a corpus does not depend on the chunk size.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.characters import Mixture, navigate
from simulacra.world.core import observe, reset, step
from simulacra.world.params import WorldParams
from simulacra.world.planning import _abstract_index, optimal_values
from simulacra.world.tokens import decode, scene_tokens, state_tokens

EVENT_COUNT = 7


@functools.lru_cache(maxsize=32)
def make_generator(params: WorldParams, mixture: Mixture, store_obs: bool = False) -> Callable:
    """`gen(base_key, episode_ids) -> dict of arrays` for those episodes (jitted, cached per world)."""
    horizon = params.horizon
    log_w = jnp.log(jnp.asarray(mixture.weights, jnp.float32))

    def episode(key):
        k_reset, k_char, k_steps = jax.random.split(key, 3)
        s0 = reset(k_reset, params)
        nav = navigate(s0, params)
        who = jax.random.categorical(k_char, log_w)

        def body(carry, k):
            s, done = carry
            k_act, k_step = jax.random.split(k)
            probs = mixture.probs(s, params, nav)[who]
            a = jax.random.categorical(k_act, jnp.log(probs)).astype(jnp.int32)
            nxt, st = step(k_step, s, a, params)
            live = ~done
            record = dict(
                states=state_tokens(s, params),
                actions=a,
                reward=jnp.where(live, st.reward, 0.0),
                true_reward=jnp.where(live, st.true_reward, 0.0),
                events=st.events.as_array() & live,
                live=live,
                terminated=st.terminated & live,
                truncated=st.truncated & live,
            )
            if store_obs:
                record["obs"] = observe(s, params)
            s = jax.tree.map(lambda old, new: jnp.where(done, old, new), s, nxt)  # freeze after the end
            return (s, done | st.terminated | st.truncated), record

        (s_final, _), rec = jax.lax.scan(body, (s0, jnp.array(False)), jax.random.split(k_steps, horizon))
        out = dict(
            scene=scene_tokens(s0, params),
            states=jnp.concatenate([rec["states"], state_tokens(s_final, params)[None]]),
            actions=jnp.where(rec["live"], rec["actions"], 0),
            reward=rec["reward"],
            true_reward=rec["true_reward"],
            events=rec["events"],
            character=who,
            length=jnp.sum(rec["live"]),
            terminated=jnp.any(rec["terminated"]),
            truncated=jnp.any(rec["truncated"]),
        )
        if store_obs:
            out["obs"] = jnp.concatenate([rec["obs"], observe(s_final, params)[None]])
        return out

    def gen(base_key, ids):
        return jax.vmap(lambda i: episode(jax.random.fold_in(base_key, i)))(ids)

    return jax.jit(gen)


@functools.lru_cache(maxsize=32)
def _optimal_fns(params: WorldParams):
    def values(scene, tokens):  # every abstract state's optimal value for one layout
        return optimal_values(decode(scene, tokens, params), params, params.horizon)

    def index(scene, tokens):
        return _abstract_index(decode(scene, tokens, params), params)

    return jax.jit(jax.vmap(values)), jax.jit(jax.vmap(index))


def _padded(fn, size: int, *args: np.ndarray) -> np.ndarray:
    """fn(*args) with the leading axis padded to `size` (one compilation for every call)."""
    n = len(args[0])
    pad = [np.concatenate([a, np.repeat(a[-1:], size - n, axis=0)]) if n < size else a for a in args]
    return np.asarray(fn(*pad))[:n]


def optimal_returns(params: WorldParams, scenes: np.ndarray, first_states: np.ndarray, batch: int = 256) -> np.ndarray:
    """(N,) optimal expected true return of each episode's layout from its start. The dynamic
    programme runs once per distinct scene (layout), not once per episode: a fixed-coin world
    needs one, a random-coin world one per coin placement."""
    values_fn, index_fn = _optimal_fns(params)
    seen: dict[bytes, int] = {}
    inverse = np.array([seen.setdefault(row.tobytes(), len(seen)) for row in np.ascontiguousarray(scenes)], np.int64)
    first = np.zeros(len(seen), np.int64)
    first[inverse[::-1]] = np.arange(len(scenes))[::-1]  # the first episode with each scene
    uniq = scenes[first]
    tables = np.concatenate([_padded(values_fn, batch, uniq[i : i + batch], first_states[first[i : i + batch]]) for i in range(0, len(uniq), batch)])
    chunk = 4096
    idx = np.concatenate([_padded(index_fn, chunk, scenes[i : i + chunk], first_states[i : i + chunk]) for i in range(0, len(scenes), chunk)])
    return tables[inverse, idx].astype(np.float32)


_DTYPES = {
    "scene": np.int16,
    "states": np.int16,
    "obs": np.uint8,
    "actions": np.int8,
    "reward": np.float32,
    "true_reward": np.float32,
    "events": np.bool_,
    "rtg": np.float32,
    "character": np.int8,
    "length": np.int16,
    "terminated": np.bool_,
    "truncated": np.bool_,
    "return": np.float32,
    "true_return": np.float32,
    "optimal_return": np.float32,
}


def generate_arrays(
    params: WorldParams,
    mixture: Mixture,
    n_episodes: int,
    seed: int = 0,
    batch: int = 4096,
    store_obs: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """All arrays of a corpus as numpy (see docs/corpus.md for each one's meaning and shape)."""
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    if len(mixture.characters) > 127:
        raise ValueError("a mixture may have at most 127 characters")
    gen = make_generator(params, mixture, store_obs)
    key = jax.random.PRNGKey(seed)
    chunks: list[dict] = []
    for start in range(0, n_episodes, batch):
        ids = jnp.arange(start, min(start + batch, n_episodes))
        if len(ids) < batch and start > 0:  # pad the last chunk to reuse the compiled shape
            ids = jnp.concatenate([ids, jnp.full((batch - len(ids),), ids[-1])])
        out = jax.device_get(gen(key, ids))
        keep = min(batch, n_episodes - start)
        chunks.append({k: v[:keep] for k, v in out.items()})
        if progress:
            progress(keep)
    arrays = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    arrays["optimal_return"] = optimal_returns(params, arrays["scene"], arrays["states"][:, 0])
    live = np.arange(params.horizon)[None, :] < arrays["length"][:, None]
    # Observed return-to-go: rtg[t] = sum of rewards from step t to the end.
    arrays["rtg"] = np.where(live, np.cumsum(arrays["reward"][:, ::-1], axis=1)[:, ::-1], 0.0)
    arrays["return"] = arrays["reward"].sum(1)
    arrays["true_return"] = arrays["true_reward"].sum(1)
    return {k: np.ascontiguousarray(v.astype(_DTYPES[k])) for k, v in arrays.items()}
