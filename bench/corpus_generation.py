"""Corpus generation: transitions per second, simulacra vs a Gymnasium collection loop, in one run.

    (a) simulacra: `generate_arrays` (jit + vmap over episodes, phases of lax.scan over steps),
        end to end (host transfer, return-to-go, optimal returns), best of 3 corpora; symbolic
        observations not stored (they are derivable from the state tokens), and (a') stored;
    (b) peer: the same world through the Gymnasium adapter (`simulacra/Coin-7x7-v0`), one episode
        at a time in a Python loop, actions from the same characters (their jitted `probs`),
        recording the same per-step fields in lists -- the way Minari's DataCollector gathers data.

Run: `.venv/bin/python bench/corpus_generation.py [--episodes 32768]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium
import jax
import numpy as np

import simulacra.world.gym  # noqa: F401  (registers the ids)
from simulacra.characters import navigate, parse_mixture
from simulacra.corpus.generate import generate_arrays
from simulacra.world import task


def ours(params, mixture, n, store_obs, repeats=3):
    generate_arrays(params, mixture, n, seed=100, store_obs=store_obs)  # compile (same shapes)
    best = 0.0
    for seed in range(repeats):  # best of `repeats` corpora (different seeds)
        t0 = time.perf_counter()
        arrays = generate_arrays(params, mixture, n, seed=seed, store_obs=store_obs)
        best = max(best, int(arrays["length"].astype(np.int64).sum()) / (time.perf_counter() - t0))
    return best


def peer(mixture, seconds):
    env = gymnasium.make("simulacra/Coin-7x7-v0").unwrapped
    params = env.params
    probs = jax.jit(lambda s, nav: mixture.probs(s, params, nav))
    nav_fn = jax.jit(lambda s: navigate(s, params))
    rng = np.random.default_rng(0)
    weights = np.asarray(mixture.weights)
    transitions, t0, episode = 0, time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        obs, _ = env.reset(seed=episode)
        who = rng.choice(len(weights), p=weights)
        nav = nav_fn(env._state)
        record = {"obs": [obs], "actions": [], "rewards": [], "true": [], "events": []}
        done = False
        while not done:
            p = np.asarray(probs(env._state, nav)[who], np.float64)
            a = int(rng.choice(5, p=p / p.sum()))
            obs, r, term, trunc, info = env.step(a)
            record["obs"].append(obs)
            record["actions"].append(a)
            record["rewards"].append(r)
            record["true"].append(info["true_reward"])
            record["events"].append([v for k, v in info.items() if k.startswith("event_")])
            transitions += 1
            done = term or trunc
        episode += 1
    return transitions / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=32768)
    ap.add_argument("--mix", default="seeker(0.1):0.5,random:0.5")
    ap.add_argument("--peer-seconds", type=float, default=10.0)
    args = ap.parse_args()
    mixture = parse_mixture(args.mix)
    params = task("coin-7x7")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {jax.default_backend()}")
    print(f"world coin-7x7 (horizon {params.horizon}), mixture {args.mix}, {args.episodes} episodes")
    a = ours(params, mixture, args.episodes, store_obs=False)
    print(f"(a)  simulacra generate_arrays            {a:>12,.0f} transitions/s")
    a_obs = ours(params, mixture, args.episodes, store_obs=True)
    print(f"(a') simulacra, observations stored too   {a_obs:>12,.0f} transitions/s")
    b = peer(mixture, args.peer_seconds)
    print(f"(b)  Gymnasium loop, same characters      {b:>12,.0f} transitions/s")
    print()
    print(f"ratio simulacra / Gymnasium loop: {a / b:8.0f}x")


if __name__ == "__main__":
    main()
