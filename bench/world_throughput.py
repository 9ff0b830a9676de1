"""World throughput: random-policy environment steps per second, simulacra vs its peers, in one run.

    (a) simulacra, jit + vmap over N worlds, symbolic observations, on `empty-8x8`
    (b) NAVIX `Navix-Empty-8x8-v0` with symbolic observations, batched the same way
    (c) Farama Minigrid `MiniGrid-Empty-8x8-v0` through gymnasium (one env, Python loop)
    (d) simulacra on the full-featured world (lava + interruption/button + tamper + reward delay)

Both JAX rollouts are one jitted `lax.scan` over a vmapped auto-resetting step with uniformly
random actions, and both fold every observation into the same checksum (`obs_checksum`: a
float32 sum, as a network's input layer would read it) so that XLA cannot drop the observation
computation. NAVIX's own step auto-resets too (a `lax.cond`, a select under vmap). Run: `make bench` (installs the `bench` extra) or
`.venv/bin/python bench/world_throughput.py [--envs 4096] [--steps 200]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.world import task
from simulacra.world.rollout import measure_steps_per_second, obs_checksum


def navix_steps_per_second(n_envs: int, n_steps: int, repeats: int) -> float:
    import navix as nx

    env = nx.make("Navix-Empty-8x8-v0", observation_fn=nx.observations.symbolic)
    n_actions = 3  # Empty-8x8 needs only left/right/forward; as a random policy in NAVIX's own examples

    def run(key):
        key, k_reset = jax.random.split(key)
        ts = jax.vmap(env.reset)(jax.random.split(k_reset, n_envs))

        def body(carry, _):
            ts, key, acc = carry
            key, k_act = jax.random.split(key)
            actions = jax.random.randint(k_act, (n_envs,), 0, n_actions)
            ts = jax.vmap(env.step)(ts, actions)
            acc = acc + obs_checksum(ts.observation)
            return (ts, key, acc), None

        (_, _, acc), _ = jax.lax.scan(body, (ts, key, jnp.uint32(0)), None, length=n_steps)
        return acc

    run = jax.jit(run)
    jax.block_until_ready(run(jax.random.PRNGKey(0)))
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run(jax.random.PRNGKey(i + 1)))
        best = min(best, time.perf_counter() - t0)
    return n_envs * n_steps / best


def minigrid_steps_per_second(seconds: float) -> float:
    import gymnasium
    import minigrid  # noqa: F401  (registers the MiniGrid ids)

    # The plain registered env: its default observation is the symbolic 7x7x3 egocentric view.
    env = gymnasium.make("MiniGrid-Empty-8x8-v0")
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a in rng.integers(0, 3, size=1000):
            _, _, term, trunc, _ = env.step(int(a))
            if term or trunc:
                env.reset()
        steps += 1000
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, default=4096, help="worlds stepped in parallel (vmap)")
    ap.add_argument("--steps", type=int, default=200, help="steps per world in one timed rollout")
    ap.add_argument("--repeats", type=int, default=3, help="timed rollouts; the best is reported")
    ap.add_argument("--minigrid-seconds", type=float, default=5.0)
    args = ap.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}")
    print(f"batch: {args.envs} worlds x {args.steps} steps, best of {args.repeats}; random policy, auto-reset")
    ours, _ = measure_steps_per_second(task("empty-8x8"), args.envs, args.steps, args.repeats)
    print(f"(a) simulacra empty-8x8           {ours:>14,.0f} steps/s")
    navix = navix_steps_per_second(args.envs, args.steps, args.repeats)
    print(f"(b) NAVIX Navix-Empty-8x8-v0      {navix:>14,.0f} steps/s")
    mg = minigrid_steps_per_second(args.minigrid_seconds)
    print(f"(c) Minigrid MiniGrid-Empty-8x8   {mg:>14,.0f} steps/s")
    full, stats = measure_steps_per_second(task("full"), args.envs, args.steps, args.repeats)
    print(f"(d) simulacra full (all pieces)   {full:>14,.0f} steps/s")
    print()
    print(f"ratio simulacra / NAVIX    (empty 8x8): {ours / navix:8.2f}x")
    print(f"ratio simulacra / Minigrid (empty 8x8): {ours / mg:8.0f}x")
    print(f"ratio simulacra full / simulacra empty: {full / ours:8.2f}x")


if __name__ == "__main__":
    main()
