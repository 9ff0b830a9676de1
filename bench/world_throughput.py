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
from simulacra.world.rollout import make_random_rollout, obs_checksum


def _best_rate(run, n_steps_total: int) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(run())
    return n_steps_total / (time.perf_counter() - t0)


def make_navix(n_envs: int, n_steps: int):
    import navix as nx

    env = nx.make("Navix-Empty-8x8-v0", observation_fn=nx.observations.symbolic)
    n_actions = 3  # Empty-8x8 needs only left/right/forward

    def run(key):
        key, k_reset = jax.random.split(key)
        ts = jax.vmap(env.reset)(jax.random.split(k_reset, n_envs))

        def body(carry, _):
            ts, key, acc = carry
            key, k_act = jax.random.split(key)
            actions = jax.random.randint(k_act, (n_envs,), 0, n_actions)
            ts = jax.vmap(env.step)(ts, actions)
            return (ts, key, acc + obs_checksum(ts.observation)), None

        (_, _, acc), _ = jax.lax.scan(body, (ts, key, jnp.uint32(0)), None, length=n_steps)
        return acc

    run = jax.jit(run)
    jax.block_until_ready(run(jax.random.PRNGKey(0)))  # compile
    return run


def make_minigrid():
    import gymnasium
    import minigrid  # noqa: F401  (registers the MiniGrid ids)

    # The plain registered env: its default observation is the symbolic 7x7x3 egocentric view.
    env = gymnasium.make("MiniGrid-Empty-8x8-v0")
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def run(seconds: float) -> float:
        steps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for a in rng.integers(0, 3, size=500):
                _, _, term, trunc, _ = env.step(int(a))
                if term or trunc:
                    env.reset()
            steps += 500
        return steps / (time.perf_counter() - t0)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, default=4096, help="worlds stepped in parallel (vmap)")
    ap.add_argument("--steps", type=int, default=200, help="steps per world in one timed rollout")
    ap.add_argument("--rounds", type=int, default=5, help="measurement rounds; the best of each is reported")
    ap.add_argument("--minigrid-seconds", type=float, default=2.0, help="Minigrid time per round")
    args = ap.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}")
    print(
        f"batch: {args.envs} worlds x {args.steps} steps; random policy, auto-reset; "
        f"{args.rounds} interleaved rounds, best of each"
    )
    total = args.envs * args.steps
    ours_run = make_random_rollout(task("empty-8x8"), args.envs, args.steps)
    full_run = make_random_rollout(task("full"), args.envs, args.steps)
    navix_run = make_navix(args.envs, args.steps)
    minigrid_run = make_minigrid()
    key = jax.random.PRNGKey(0)
    jax.block_until_ready((ours_run(key), full_run(key)))  # compile
    best = {"ours": 0.0, "navix": 0.0, "minigrid": 0.0, "full": 0.0}
    # Interleaving the contenders makes a transient load on the machine hit all of them alike.
    for r in range(args.rounds):
        k = jax.random.fold_in(key, r + 1)
        best["ours"] = max(best["ours"], _best_rate(lambda: ours_run(k), total))
        best["navix"] = max(best["navix"], _best_rate(lambda: navix_run(k), total))
        best["minigrid"] = max(best["minigrid"], minigrid_run(args.minigrid_seconds))
        best["full"] = max(best["full"], _best_rate(lambda: full_run(k), total))
    ours, navix, mg, full = best["ours"], best["navix"], best["minigrid"], best["full"]
    print(f"(a) simulacra empty-8x8           {ours:>14,.0f} steps/s")
    print(f"(b) NAVIX Navix-Empty-8x8-v0      {navix:>14,.0f} steps/s")
    print(f"(c) Minigrid MiniGrid-Empty-8x8   {mg:>14,.0f} steps/s")
    print(f"(d) simulacra full (all pieces)   {full:>14,.0f} steps/s")
    print()
    print(f"ratio simulacra / NAVIX    (empty 8x8): {ours / navix:8.2f}x")
    print(f"ratio simulacra / Minigrid (empty 8x8): {ours / mg:8.0f}x")
    print(f"ratio simulacra full / simulacra empty: {full / ours:8.2f}x")


if __name__ == "__main__":
    main()
