"""PPO speed: wall-clock to 0.9 success on `coin-9x9`, simulacra PPO vs Stable-Baselines3 PPO, in
one run; and the cost of 8 vmapped seeds relative to 1.

    (a) simulacra: `PPOConfig()` defaults with the learning rate annealed over 2M steps, as (b)
        does; one run in stages of 4 updates (`training.reinforce.make_stages`, 8192 env steps
        per stage), and after each stage its stochastic policy plays 200 fresh episodes
        (`lenses.behaviour.evaluate`); evaluation time is not counted. Time to threshold: the
        training time up to the first stage whose policy reaches 0.9, with and without the
        compilation of the stage function. (The same protocol as (b), stage for stage.)
    (b) Stable-Baselines3 PPO ("MlpPolicy", torch, CPU) on the Gymnasium adapter
        (`simulacra/Coin-9x9-v0`) with the same hyper-parameters (8 envs x 256 steps = 2048 per
        update, 4 minibatches of 512, 4 epochs, lr 2.5e-3 annealed, gamma 0.99, lambda 0.95,
        clip 0.2, entropy 0.01, value 0.5, grad norm 0.5, 64-64 tanh actor and critic) and the
        same input (one-hot tiles, agent mask, flag bits); its learning rate anneals over 2M steps,
        so it is nearly constant before the threshold. Every 4 updates its stochastic policy
        plays 200 episodes; evaluation time is not counted. SB3 is capped at `--sb3-seconds`; if
        it has not reached 0.9 by then, the printed ratio is a lower bound.
    (c) 8 seeds under `jax.vmap` vs 1 seed, same config and budget (compilation excluded).
    (d) throughput: environment steps per second of whole PPO training runs (`make_train`, one
        jitted program: rollouts, GAE, 4 epochs of minibatch updates) with `--envs` parallel
        environments (default 4096) for `--throughput-steps` steps, against the default config
        (64 environments) for the same number of updates, in the same run; compilation is timed
        separately and excluded from steps/s. The trained policy's success is printed so that a
        fast but broken run shows. On a GPU this is the figure issue #17 asks for (target
        >= 15 M steps/s at 4096 environments).

Every part prints the device JAX runs on; `--only throughput` runs (d) alone (SB3 is a CPU peer
and is skipped on a GPU machine unless `--sb3` is given).

Needs torch and stable-baselines3 in the environment (not project dependencies; install torch
2.13.0 from the local wheel *first*, see docs/benchmarks.md). Without them, (b) is skipped.

    python bench/ppo_speed.py [--threshold 0.9] [--sb3-seconds 600] [--only throughput --envs 4096]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.lenses.behaviour import evaluate, summarise
from simulacra.training.reinforce import PPOConfig, make_policy, make_stages, make_train
from simulacra.world import Tile, task

WORLD = task("coin-9x9")


def simulacra_time_to(threshold: float, seed: int = 0, max_steps: int = 2_000_000, every: int = 4) -> dict:
    cfg = PPOConfig(total_steps=max_steps)
    init, advance = make_stages(cfg, WORLD)
    key = jax.random.PRNGKey(seed)
    policy = make_policy(cfg, WORLD)
    t0 = time.perf_counter()
    runner = jax.block_until_ready(jax.jit(init)(key))
    stage = jax.jit(advance, donate_argnums=0).lower(runner, jnp.arange(every)).compile()
    compile_s = time.perf_counter() - t0
    train_s, success = 0.0, float("nan")
    for first in range(0, cfg.n_updates, every):
        t1 = time.perf_counter()
        runner, _ = jax.block_until_ready(stage(runner, jnp.arange(first, first + every)))
        train_s += time.perf_counter() - t1
        steps = (first + every) * cfg.batch_size
        success = summarise(evaluate(policy, WORLD, jax.random.PRNGKey(10_000 + first), 200, policy_params=runner.train_state.params))["success"]
        if (first // every) % 4 == 3 or success >= threshold:
            print(f"  (a) {steps:>8,} steps: success {success:.3f}, train {train_s:.1f} s", flush=True)
        if success >= threshold:
            break
    return {"steps": steps, "success": success, "compile_s": compile_s, "train_s": train_s}


def one_hot_obs(obs: np.ndarray) -> np.ndarray:
    """The network input of `training.reinforce.encode_obs`, in numpy."""
    tile = np.eye(Tile.COUNT, dtype=np.float32)[obs[..., 0]]
    flags = ((obs[..., 2:3] >> np.array([0, 1], np.uint8)) & 1).astype(np.float32)
    return np.concatenate([tile, obs[..., 1:2].astype(np.float32), flags], axis=-1)


def sb3_time_to(threshold: float, cap_s: float, seed: int = 0) -> dict | None:
    try:
        import gymnasium
        import torch
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.env_util import make_vec_env
    except ImportError as e:
        print(f"  (b) skipped: {e}")
        return None
    import simulacra.world.gym  # noqa: F401  (registers the ids)

    class OneHot(gymnasium.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.grid_shape = (*env.unwrapped.params.shape, 3)  # the plain ids' observation is this grid, flat
            self.observation_space = gymnasium.spaces.Box(0.0, 1.0, (*self.grid_shape[:2], Tile.COUNT + 3), np.float32)

        def observation(self, obs):
            return one_hot_obs(obs.reshape(self.grid_shape))

    def make():
        return OneHot(gymnasium.make("simulacra/Coin-9x9-v0"))

    # One torch thread is SB3's fastest setting here: with two, torch's workers contend with the
    # env loop (measured 142 vs 522 steps/s on the 2-core machine).
    torch.set_num_threads(1)
    env = make_vec_env(make, n_envs=8, seed=seed)
    eval_env = make()
    model = PPO(
        "MlpPolicy", env, n_steps=256, batch_size=512, n_epochs=4, learning_rate=lambda frac: 2.5e-3 * frac,
        gamma=0.99, gae_lambda=0.95, clip_range=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
        policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": torch.nn.Tanh},
        seed=seed, device="cpu", verbose=0,
    )

    def success_rate(n: int = 200) -> float:
        wins = 0
        for i in range(n):
            obs, _ = eval_env.reset(seed=10_000 + i)
            done = False
            while not done:
                action, _ = model.predict(obs, deterministic=False)
                obs, _, term, trunc, info = eval_env.step(action)
                wins += bool(info["event_coin"])
                done = term or trunc
        return wins / n

    class Clock(BaseCallback):
        """Counts training time only; evaluates every 4 updates; stops at the threshold or the cap."""

        def __init__(self):
            super().__init__()
            self.train_s, self.result, self.mark = 0.0, None, None

        def _on_training_start(self):
            self.mark = time.perf_counter()

        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self):
            now = time.perf_counter()
            self.train_s += now - self.mark
            steps = self.model.num_timesteps
            if steps and steps % (4 * 2048) == 0:
                s = success_rate()
                print(f"  (b) {steps:>8,} steps: success {s:.3f}, train {self.train_s:.1f} s", flush=True)
                if s >= threshold:
                    self.result = {"steps": steps, "success": s, "train_s": self.train_s, "reached": True}
            if self.result is None and self.train_s > cap_s:
                self.result = {"steps": steps, "success": float("nan"), "train_s": self.train_s, "reached": False}
            self.mark = time.perf_counter()
            if self.result is not None:
                self.model._stop = True

    clock = Clock()

    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            return not getattr(self.model, "_stop", False)

    model.learn(total_timesteps=2_000_000, callback=[clock, Stop()])
    return clock.result


def seeds_cost(n_seeds: int = 8, budget: int = 204_800) -> tuple[float, float]:
    cfg = PPOConfig(total_steps=budget)
    train = make_train(cfg, WORLD)
    one = jax.jit(train).lower(jax.random.PRNGKey(0)).compile()
    keys = jax.random.split(jax.random.PRNGKey(0), n_seeds)
    many = jax.jit(jax.vmap(train)).lower(keys).compile()
    best_one = best_many = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        jax.block_until_ready(one(jax.random.PRNGKey(0)))
        t1 = time.perf_counter()
        jax.block_until_ready(many(keys))
        t2 = time.perf_counter()
        best_one, best_many = min(best_one, t1 - t0), min(best_many, t2 - t1)
    return best_one, best_many


def throughput(n_envs: int, total_steps: int, rounds: int = 2) -> dict:
    """(d): steps/s of a whole training run at `n_envs` environments (compilation excluded)."""
    cfg = PPOConfig(n_envs=n_envs, total_steps=total_steps)
    t0 = time.perf_counter()
    train = jax.jit(make_train(cfg, WORLD)).lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for r in range(rounds):
        t0 = time.perf_counter()
        params, _ = jax.block_until_ready(train(jax.random.PRNGKey(r)))
        best = min(best, time.perf_counter() - t0)
    steps = cfg.n_updates * cfg.batch_size
    success = summarise(evaluate(make_policy(cfg, WORLD), WORLD, jax.random.PRNGKey(10_000), 200, policy_params=params))["success"]
    return {"envs": n_envs, "steps": steps, "seconds": best, "rate": steps / best, "compile_s": compile_s, "success": success}


def device() -> str:
    d = jax.devices()[0]
    return f"{d.platform} ({getattr(d, 'device_kind', d.platform)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--sb3-seconds", type=float, default=600.0, help="cap on SB3's training time")
    ap.add_argument("--skip-seeds", action="store_true", help="skip (c)")
    ap.add_argument("--only", choices=["throughput"], help="run only (d)")
    ap.add_argument("--envs", type=int, default=4096, help="(d): parallel environments")
    ap.add_argument("--throughput-steps", type=int, default=40_000_000, help="(d): environment steps per training run")
    ap.add_argument("--sb3", action="store_true", help="run the SB3 peer even on a GPU machine")
    args = ap.parse_args()
    print(f"{platform.machine()} {os.cpu_count()} cores, jax {jax.__version__} on {device()}, world coin-9x9")
    if args.only == "throughput":
        run_throughput(args)
        return
    print(f"time to success {args.threshold}")
    ours = simulacra_time_to(args.threshold)
    on_gpu = jax.default_backend() != "cpu"
    peer = None if on_gpu and not args.sb3 else sb3_time_to(args.threshold, args.sb3_seconds)
    if peer is None and on_gpu and not args.sb3:
        print("(b) SB3 skipped: it is a CPU peer and JAX runs on a GPU here (--sb3 runs it anyway)")
    with_compile = ours["compile_s"] + ours["train_s"]
    print(f"(a) simulacra PPO: {ours['success']:.3f} after {ours['steps']:,} steps in {ours['train_s']:.1f} s "
          f"({with_compile:.1f} s with compilation)")
    if peer is not None:
        reached = f"{peer['success']:.3f}" if peer["reached"] else "not reached"
        print(f"(b) SB3 PPO: {reached} after {peer['steps']:,} steps in {peer['train_s']:.1f} s "
              f"({peer['steps'] / peer['train_s']:,.0f} steps/s; simulacra {ours['steps'] / ours['train_s']:,.0f} steps/s)")
        bound = "" if peer["reached"] else ">= "
        print(f"time to {args.threshold}: SB3 / simulacra = {bound}{peer['train_s'] / ours['train_s']:.0f}x "
              f"(compilation excluded), {bound}{peer['train_s'] / with_compile:.0f}x (included)")
        if not peer["reached"]:
            print(f"  SB3 did not reach {args.threshold} within the {args.sb3_seconds:.0f} s cap: the ratios are lower bounds")
    if not args.skip_seeds:
        t1, t8 = seeds_cost()
        print(f"(c) 204,800 steps per seed: 1 seed {t1:.1f} s, 8 vmapped seeds {t8:.1f} s: 8 seeds cost {t8 / t1:.2f}x one")
    run_throughput(args)


def run_throughput(args) -> None:
    """(d) at `--envs` against the default 64 environments for the same number of updates."""
    default = PPOConfig()
    many = throughput(args.envs, args.throughput_steps)
    updates = max(1, args.throughput_steps // (args.envs * default.n_steps))
    base = throughput(default.n_envs, updates * default.n_envs * default.n_steps)
    for r in (base, many):
        print(f"(d) {r['envs']:>6,} envs: {r['steps']:>12,} steps in {r['seconds']:.2f} s = {r['rate'] / 1e6:8.2f} M steps/s "
              f"(compile {r['compile_s']:.1f} s; success {r['success']:.3f}) on {device()}")
    print(f"(d) {args.envs} envs / {default.n_envs} envs: {many['rate'] / base['rate']:.1f}x the steps/s")


if __name__ == "__main__":
    main()
