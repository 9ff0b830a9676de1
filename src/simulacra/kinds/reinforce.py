"""`reinforce`: PPO from scratch on symbolic observations (`training.reinforce`), the seeds of a
sweep point `vmap`ped in one call, then measured by the behaviour lens (`kinds.behaviour`). A
`corpus:` is optional: it is only the reference law of `ood_rate` and the `corpus_*` metrics.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

import jax
import jax.numpy as jnp
from pydantic import BaseModel, ConfigDict, Field

from simulacra.corpus import Episodes
from simulacra.kinds.behaviour import BEHAVIOUR_METRICS, BEHAVIOUR_VERSION, eval_key, measured
from simulacra.kinds.inputs import get_corpus
from simulacra.kinds.sections import event_rates, misgeneralisation
from simulacra.lenses import behaviour
from simulacra.studies import Context, Result, register_process
from simulacra.training.reinforce import PPOConfig, make_policy, make_train

PPO_FIELDS = frozenset(f.name for f in dataclasses.fields(PPOConfig))


class PPORunParams(BaseModel):
    """The PPO fields the acting kinds share (`training.reinforce.PPOConfig`; its other fields keep
    their defaults): `reinforce` adds the discount, `onset` a grid of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    total_steps: int = Field(200_000, ge=1, le=1_000_000_000)
    """Environment steps of training (at most 10⁹)."""
    n_envs: int = Field(64, ge=1, le=65_536)
    """Environments stepped in parallel (at most 65536)."""
    n_steps: int = Field(32, ge=1, le=4096)
    """Steps per environment between updates (at most 4096)."""
    lr: float = Field(2.5e-3, gt=0)
    """Adam learning rate (the peak: annealed linearly to 0 over the run)."""
    ent_coef: float = Field(0.01, ge=0)
    """Entropy bonus coefficient."""
    network: Literal["mlp", "cnn"] = "mlp"
    """The actor-critic's torso (`training.reinforce.NETWORKS`)."""
    greedy: bool = False
    """Evaluate with the most likely action instead of sampling."""

    def ppo_config(self) -> PPOConfig:
        """The training run: every `PPOConfig` field these params name."""
        return PPOConfig(**self.model_dump(include=PPO_FIELDS))


class ReinforceParams(PPORunParams):
    """PPO from scratch (`training.reinforce.PPOConfig`, whose other fields keep their defaults)."""

    gamma: float = Field(0.99, gt=0, le=1)
    """Discount: a knob of the feedback gap."""


@register_process(
    "reinforce", params=ReinforceParams, metrics=BEHAVIOUR_METRICS + ("train_seconds",), batch_seeds=True, lenses=("behaviour",),
    version=BEHAVIOUR_VERSION, sections=(event_rates, misgeneralisation),
    description="PPO from scratch (training.reinforce), seeds vmapped; a corpus, if named, is only the reference of ood_rate",
)  # fmt: skip
def run(ctx: Context, seeds: list[int]) -> list[Result]:
    corpus = get_corpus(ctx)
    episodes, seconds = train_and_act(ctx, seeds)
    return [measured(ctx, seed, e, corpus, {"train_seconds": seconds}) for seed, e in zip(seeds, episodes)]


def train_and_act(ctx: Context, seeds: list[int]) -> tuple[list[Episodes], float]:
    """PPO trained from scratch for every seed (vmapped, one program) in `ctx.world`, then each
    seed's evaluation episodes in the world it is measured in; and the training seconds per seed."""
    p: ReinforceParams = ctx.params
    ppo = p.ppo_config()
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    t0 = time.perf_counter()
    weights, _ = jax.block_until_ready(jax.jit(jax.vmap(make_train(ppo, ctx.world)))(keys))
    seconds = (time.perf_counter() - t0) / len(seeds)
    policy = make_policy(ppo, ctx.measured_in, greedy=p.greedy)
    weights = jax.device_get(weights)  # each seed's slice taken on the host (no program per leaf shape)
    episodes = []
    for i, seed in enumerate(seeds):
        seed_weights = jax.tree.map(lambda x, i=i: x[i], weights)
        episodes.append(behaviour.rollouts(policy, ctx.measured_in, eval_key(seed), ctx.lenses["behaviour"].episodes, seed_weights))
    return episodes, seconds
