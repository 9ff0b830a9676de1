"""Batched corpus generation: N episodes of one world, acted by a mixture of characters.

Episode i draws everything from `fold_in(key(seed), i)`: its reset, its character (by the
mixture's weights) and, at step t, `fold_in(episode_key, t)`. So a corpus depends only on the
seed, never on how episodes are batched or scheduled.

Episodes run in *phases* of `phase` steps: a jitted `lax.scan` over a `vmap`ped batch of
episodes; after each phase the finished episodes leave the batch and the rest continue. Short
episodes therefore do not pay for the horizon (a plain scan over the horizon stepped padding for
two thirds of its steps on a seeker + random corpus).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.characters import Mixture, navigate
from simulacra.corpus.episodes import DTYPES
from simulacra.world.core import EVENT_NAMES, observe, reset, step
from simulacra.world.params import WorldParams
from simulacra.world.planning import abstract_index, optimal_values
from simulacra.world.tokens import decode, scene_tokens, state_length, state_tokens

_EVENT_BITS = np.arange(len(EVENT_NAMES), dtype=np.uint16)

MAX_EPISODES = 10_000_000
"""The most episodes one corpus may have. A corpus is generated and held in memory: about 1.5 kB
per episode of a 7x7 world with horizon 50, tens of kB in the largest worlds."""
MAX_SEED = 2**32 - 1
"""Corpus seeds are 0 … MAX_SEED (what `jax.random.PRNGKey` takes)."""


def check_size(n_episodes: int, seed: int) -> None:
    """Raise ValueError unless `n_episodes` episodes may be generated with `seed` (before any work)."""
    if not 1 <= n_episodes <= MAX_EPISODES:
        raise ValueError(f"a corpus has 1..{MAX_EPISODES:,} episodes, got {n_episodes:,}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"a corpus seed is in 0..2**32-1, got {seed}")


@functools.lru_cache(maxsize=32)
def _episode_fns(params: WorldParams, mixture: Mixture, phase: int):
    """(init, run): jitted, vmapped over episodes."""
    log_w = jnp.log(jnp.asarray(mixture.weights, jnp.float32))

    def init(base_key, i):
        k_reset, k_char, k_steps = jax.random.split(jax.random.fold_in(base_key, i), 3)
        s0 = reset(k_reset, params)
        slot = dict(state=s0, nav=navigate(s0, params), who=jax.random.categorical(k_char, log_w), key=k_steps, done=jnp.array(False))
        return slot, scene_tokens(s0, params)

    def run(slot, t0):
        def body(slot, t):
            s, done = slot["state"], slot["done"]
            k_act, k_step = jax.random.split(jax.random.fold_in(slot["key"], t))
            probs = mixture.probs(s, params, slot["nav"])[slot["who"]]
            a = jax.random.categorical(k_act, jnp.log(probs)).astype(jnp.int32)
            nxt, st = step(k_step, s, a, params)
            live = ~done
            events = st.events.as_array() & live
            rec = dict(  # compact dtypes: records are copied to the host after every phase
                states=state_tokens(s, params).astype(jnp.int16),
                actions=jnp.where(live, a, 0).astype(jnp.int8),
                reward=jnp.where(live, st.reward, 0.0),
                true_reward=jnp.where(live, st.true_reward, 0.0),
                events=jnp.sum(events.astype(jnp.uint16) << jnp.arange(len(EVENT_NAMES), dtype=jnp.uint16), dtype=jnp.uint16),
                live=live,
                terminated=st.terminated & live,
            )
            s = jax.tree.map(lambda old, new: jnp.where(done, old, new), s, nxt)  # freeze after the end
            ended = (st.terminated | st.truncated) & live
            return {**slot, "state": s, "done": done | ended}, rec

        slot, rec = jax.lax.scan(body, slot, t0 + jnp.arange(phase, dtype=jnp.int32))
        return slot, rec, state_tokens(slot["state"], params).astype(jnp.int16)

    batch_run = jax.vmap(run, in_axes=(0, None))

    def run_rows(pool, idx, t0):
        """Step the pool's rows `idx` for one phase, in place (the pool is donated)."""
        sub, rec, last = batch_run(jax.tree.map(lambda x: x[idx], pool), t0)
        pool = jax.tree.map(lambda x, y: x.at[idx].set(y), pool, sub)
        return pool, rec, last, sub["done"]

    return jax.jit(jax.vmap(init, in_axes=(None, 0))), jax.jit(run_rows, donate_argnums=0)


def generate_arrays(
    params: WorldParams,
    mixture: Mixture,
    n_episodes: int,
    seed: int = 0,
    batch: int = 4096,
    store_obs: bool = False,
    progress: Callable[[int], None] | None = None,
    phase: int = 8,
    wave: int = 32768,
) -> dict[str, np.ndarray]:
    """All arrays of a corpus as numpy (see docs/corpus.md for each one's meaning and shape).
    `batch` episodes are stepped together, `phase` steps per call, `wave` episodes held at once;
    none of them changes the result."""
    check_size(n_episodes, seed)
    if len(mixture.characters) > 127:
        raise ValueError("a mixture may have at most 127 characters")
    batch = min(batch, 1 << max(6, (n_episodes - 1).bit_length()))  # small corpora, small batches
    horizon, n_state = params.horizon, state_length(params)
    init, run = _episode_fns(params, mixture, phase)
    key = jax.random.PRNGKey(seed)
    a = {
        "scene": np.zeros((n_episodes, 2 + params.height * params.width), np.int16),
        "states": np.zeros((n_episodes, horizon + 1, n_state), np.int16),
        "actions": np.zeros((n_episodes, horizon), np.int8),
        "reward": np.zeros((n_episodes, horizon), np.float32),
        "true_reward": np.zeros((n_episodes, horizon), np.float32),
        "events": np.zeros((n_episodes, horizon, len(EVENT_NAMES)), bool),
        "character": np.zeros((n_episodes,), np.int8),
        "length": np.zeros((n_episodes,), np.int16),
        "terminated": np.zeros((n_episodes,), bool),
    }
    for w0 in range(0, n_episodes, wave):
        ids = np.arange(w0, min(w0 + wave, n_episodes))
        size = -(-len(ids) // batch) * batch  # the pool holds whole batches
        pool, scene = init(key, jnp.asarray(np.pad(ids, (0, size - len(ids)), mode="edge")))
        a["scene"][ids] = np.asarray(scene)[: len(ids)]
        a["character"][ids] = np.asarray(pool["who"])[: len(ids)]
        # Host-side bookkeeping only: which pool rows still run. The pool stays on the device and
        # every call has the same shapes (one compilation); padding rows repeat a running row.
        active = np.arange(len(ids))
        t0 = 0
        while len(active):
            t1 = min(t0 + phase, horizon)
            t_states = min(t0 + phase, horizon + 1)  # states run to s_T
            still = []
            for c in range(0, len(active), batch):
                rows = active[c : c + batch]
                n = len(rows)
                pool, rec, last, done = run(pool, jnp.asarray(np.pad(rows, (0, batch - n), mode="edge")), jnp.int32(t0))
                rec, last, done = jax.device_get((rec, last, done))
                ep = ids[rows]
                a["states"][ep, t0:t_states] = rec["states"][:n, : t_states - t0]
                if t0 + phase <= horizon:
                    a["states"][ep, t0 + phase] = last[:n]
                for k in ("actions", "reward", "true_reward"):
                    a[k][ep, t0:t1] = rec[k][:n, : t1 - t0]
                a["events"][ep, t0:t1] = (rec["events"][:n, : t1 - t0, None] >> _EVENT_BITS) & 1
                a["length"][ep] += rec["live"][:n].sum(1).astype(np.int16)
                a["terminated"][ep] |= rec["terminated"][:n].any(1)
                if progress:
                    progress(int(done[:n].sum()))
                still.append(rows[~done[:n]])
            active = np.concatenate(still)
            t0 += phase
    # After its end an episode's state stays frozen: s_t = s_L for t > L.
    length = a["length"].astype(np.int64)
    final = a["states"][np.arange(n_episodes), length]  # (N, S) the state the episode ended in
    after = np.arange(horizon + 1)[None, :] > length[:, None]
    a["states"] = np.where(after[..., None], final[:, None, :], a["states"])
    a["truncated"] = ~a["terminated"]
    live = np.arange(horizon)[None, :] < a["length"][:, None]
    a["rtg"] = np.where(live, np.cumsum(a["reward"][:, ::-1], axis=1)[:, ::-1], 0.0)  # observed return-to-go
    a["return"] = a["reward"].sum(1)
    a["true_return"] = a["true_reward"].sum(1)
    a["optimal_return"] = optimal_returns(params, a["scene"], a["states"][:, 0])
    if store_obs:
        a["obs"] = observations(params, a["scene"], a["states"])
    return {k: np.ascontiguousarray(v.astype(DTYPES[k], copy=False)) for k, v in a.items()}


@functools.lru_cache(maxsize=32)
def _observe_fn(params: WorldParams):
    return jax.jit(jax.vmap(jax.vmap(lambda sc, tk: observe(decode(sc, tk, params), params), in_axes=(None, 0))))


def observations(params: WorldParams, scenes: np.ndarray, states: np.ndarray, batch: int = 1024) -> np.ndarray:
    """(n, T+1, H, W, 3) uint8 observations of stored states, derived exactly from their tokens."""
    fn = _observe_fn(params)
    return np.concatenate([_padded(fn, batch, scenes[i : i + batch], states[i : i + batch]) for i in range(0, len(scenes), batch)])


@functools.lru_cache(maxsize=32)
def _optimal_fns(params: WorldParams):
    def values(scene, tokens):  # every abstract state's optimal value for one layout
        return optimal_values(decode(scene, tokens, params), params, params.horizon)

    def index(scene, tokens):
        return abstract_index(decode(scene, tokens, params), params)

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
    batch = min(batch, 1 << (len(uniq) - 1).bit_length())  # powers of two: few compilations, little padding
    tables = np.concatenate([_padded(values_fn, batch, uniq[i : i + batch], first_states[first[i : i + batch]]) for i in range(0, len(uniq), batch)])
    chunk = 4096
    idx = np.concatenate([_padded(index_fn, chunk, scenes[i : i + chunk], first_states[i : i + chunk]) for i in range(0, len(scenes), chunk)])
    return tables[inverse, idx].astype(np.float32)
