"""RL fine-tuning of a pretrained simulator, with a KL penalty to the frozen original.

The seeds ask what happens to a simulator further trained by reinforcement learning (as RLHF
does to language models): does the optimiser keep taking the simulator's advice, or leave it?
`finetune(sim, config, key)` trains the simulator's own network, acting on its own token stream
(`Simulator.act`), by PPO-clip on the observed reward with a penalty

    loss = −E[min(ρ A, clip(ρ, 1 ± ε) A)] + β · E_t[ KL(π_θ(·|h_t) ‖ π_ref(·|h_t)) ]

where π is the model's distribution over the five ACTION tokens (renormalised), π_ref the
frozen pretrained simulator's at the same history h_t (exact over the five actions, not
sampled), ρ the probability ratio to the acting policy and A the return-to-go (discount γ)
minus its mean over the batch's live episodes at the same step, normalised. β = 0 is plain RL;
a very large β holds the policy at the reference.

Each update acts `episodes` episodes with the current parameters (jitted, batched, with a
key/value cache), scores them under the reference with one forward pass, and runs `epochs` ×
`minibatches` PPO steps (a jitted `lax.scan`). Logged per update: return, true return, episode
length, KL(π ‖ π_ref) on the visited states, and the **agreement rate**: how often the policy's
most likely action is the reference simulator's most likely action (how much of the
"grandmaster's advice" the optimiser still takes). `snapshots` keeps the parameters after chosen
updates (for the layer analyses of issue #7); each is a `Simulator` that saves and loads like
any other.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simulacra.model import Simulator, make_act
from simulacra.nets.transformer import Hooks
from simulacra.world.tokens import Vocab


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """An RL fine-tuning run (recorded in the model card)."""

    beta: float = 0.1
    """KL penalty coefficient (to the frozen pretrained simulator)."""
    updates: int = 50
    """Rollout-and-learn iterations."""
    episodes: int = 128
    """Episodes acted per update."""
    epochs: int = 4
    """Passes over each update's episodes."""
    minibatches: int = 4
    """Minibatches per pass (episodes must divide evenly)."""
    lr: float = 1e-4
    """Adam learning rate."""
    clip_eps: float = 0.2
    """PPO ratio clip."""
    gamma: float = 1.0
    """Discount of the return-to-go that forms the advantage."""
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    """Sampling temperature while acting."""
    target: float | None = None
    """Return-to-go prompt (return-conditioned models only)."""
    character: int | None = None
    """Character tag prompt (character-conditioned models only)."""
    snapshots: tuple[int, ...] = ()
    """Keep the parameters after these updates (1-based; `updates` is always kept as the result)."""

    def __post_init__(self) -> None:
        def bad(f, v, why):
            raise ValueError(f"invalid FinetuneConfig.{f}={v!r}: {why}")

        if not self.beta >= 0:
            bad("beta", self.beta, "must be at least 0")
        for f in ("updates", "episodes", "epochs", "minibatches"):
            if not isinstance(getattr(self, f), int) or getattr(self, f) < 1:
                bad(f, getattr(self, f), "must be a positive integer")
        if self.episodes % self.minibatches:
            bad("minibatches", self.minibatches, f"must divide episodes={self.episodes}")
        if not self.lr > 0:
            bad("lr", self.lr, "must be positive")
        if not 0 < self.clip_eps < 1:
            bad("clip_eps", self.clip_eps, "must be in (0, 1)")
        if not 0 < self.gamma <= 1:
            bad("gamma", self.gamma, "must be in (0, 1]")
        if not self.temperature > 0:
            bad("temperature", self.temperature, "must be positive (sampling is needed for the policy gradient)")
        for u in self.snapshots:
            if not 1 <= u <= self.updates:
                bad("snapshots", self.snapshots, f"update indices must be in 1..{self.updates}")


class FinetuneResult(NamedTuple):
    sim: Simulator  # the fine-tuned model (card: process "finetune", the reference's provenance)
    metrics: dict[str, np.ndarray]  # per update: return, true_return, length, kl, agreement, loss
    snapshots: dict[int, Simulator]  # update index -> model after that update


def _action_logp(model, params, tokens, fmt, act_ids):
    """log π(· | h_t) over the five actions at every step t: (N, T, 5)."""
    logits, _ = model.apply(params, tokens[:, :-1])
    pos = jnp.asarray(fmt.action_pos(np.arange(fmt.params.horizon))) - 1
    return jax.nn.log_softmax(logits[:, pos][..., act_ids], axis=-1)


def _advantages(reward, mask, gamma):
    """Return-to-go minus its batch mean over live episodes at the same step, normalised."""
    def back(g, r):
        g = r + gamma * g
        return g, g

    _, rtg = jax.lax.scan(back, jnp.zeros(reward.shape[0]), reward.T, reverse=True)
    rtg = rtg.T
    m = mask.astype(jnp.float32)
    base = (rtg * m).sum(0) / jnp.maximum(m.sum(0), 1.0)
    adv = (rtg - base) * m
    std = jnp.sqrt((adv**2).sum() / jnp.maximum(m.sum(), 1.0))
    return adv / (std + 1e-8)


def _kl(logp, logq):
    """KL(p ‖ q) over the last axis from log-probabilities."""
    return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


split3 = jax.jit(jax.vmap(lambda k: jax.random.split(k, 3)))
"""(S, 2) keys -> (S, 3, 2): each seed's key split in three (one compiled program for every run)."""


def finetune(sim: Simulator, config: FinetuneConfig, key: jax.Array, world=None, progress: bool = True) -> FinetuneResult:
    """RL-fine-tune `sim` (left unchanged) in its world (or `world`, same token format)."""
    return finetune_seeds([sim], config, [key], world=world, progress=progress)[0]


def finetune_seeds(sims: list[Simulator], config: FinetuneConfig, keys, world=None, progress: bool = True) -> list[FinetuneResult]:
    """`finetune` of several models of one spec and format (a sweep point's seeds) at once: one
    compilation, every run `vmap`ped side by side, run `i` acting and learning with `keys[i]` (each
    equal to its own `finetune` up to float rounding)."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from simulacra.progress import progress as meter

    if not sims or len(sims) != len(keys):
        raise ValueError(f"finetune_seeds needs one key per model, got {len(sims)} models and {len(keys)} keys")
    first = sims[0]
    if any(s.spec != first.spec or s.fmt != first.fmt for s in sims[1:]):
        raise ValueError("finetune_seeds: the models must share one spec and token format")
    world = first.check_world(world)
    target, character = first.prompt(config.target, config.character)
    fmt, model = first.fmt, first.model
    lut = fmt.lut
    act_ids = jnp.asarray(fmt.local_ids(*Vocab.ACTION))
    n, mb = config.episodes, config.episodes // config.minibatches
    act = jax.jit(jax.vmap(make_act(first, world, n), in_axes=(0, 0, None, None, None, None)))
    opt = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.lr))
    stack = lambda trees: jax.tree.map(lambda *x: jnp.stack([jnp.asarray(v) for v in x]), *trees)  # noqa: E731
    ref_params = stack([s.params for s in sims])

    @jax.jit
    @jax.vmap
    def score(params, tokens):
        return _action_logp(model, params, lut[tokens], fmt, act_ids)

    def loss_fn(params, batch):
        tokens, actions, old_logp, ref_logp, adv, mask = batch
        logp = _action_logp(model, params, lut[tokens], fmt, act_ids)
        m = mask.astype(jnp.float32)
        denom = jnp.maximum(m.sum(), 1.0)
        lp_a = jnp.take_along_axis(logp, actions[..., None], axis=-1)[..., 0]
        old_a = jnp.take_along_axis(old_logp, actions[..., None], axis=-1)[..., 0]
        ratio = jnp.exp(lp_a - old_a)
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * adv)
        kl = _kl(logp, ref_logp)
        return ((pg + config.beta * kl) * m).sum() / denom

    grad = jax.value_and_grad(loss_fn)

    @jax.jit
    @jax.vmap
    def learn(params, opt_state, batch, key):
        def epoch(carry, k):
            params, opt_state = carry
            perm = jax.random.permutation(k, n).reshape(config.minibatches, mb)

            def minibatch(carry, idx):
                params, opt_state = carry
                loss, g = grad(params, jax.tree.map(lambda x: x[idx], batch))
                updates, opt_state = opt.update(g, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), loss

            return jax.lax.scan(minibatch, (params, opt_state), perm)

        (params, opt_state), losses = jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, config.epochs))
        return params, opt_state, losses.mean()

    advantages = jax.jit(jax.vmap(_advantages, in_axes=(0, 0, None)), static_argnums=2)
    kl_of = jax.jit(_kl)
    keys = jnp.stack([jnp.asarray(k) for k in keys])
    params = jax.tree.map(jnp.array, ref_params)  # a copy: the references stay frozen
    opt_state = jax.vmap(opt.init)(params)
    names = ("return", "true_return", "length", "kl", "agreement", "loss")
    seeds = len(sims)
    metrics = {k: np.zeros((seeds, config.updates), np.float32) for k in names}
    snapshots: list[dict[int, Simulator]] = [{} for _ in sims]
    t0 = time.perf_counter()
    label = "fine-tuning" if seeds == 1 else f"fine-tuning {seeds} seeds"
    columns = (TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total} updates  return {task.fields[ret]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with meter(label, config.updates, "updates", enabled=progress, fields={"ret": "-"}, columns=columns) as bar:
        for u in range(config.updates):
            ks = split3(keys)
            keys, k_act, k_learn = ks[:, 0], ks[:, 1], ks[:, 2]
            out = act(params, k_act, target, character, jnp.float32(config.temperature), Hooks())
            mask = out.live
            old_logp = jnp.log(jnp.maximum(out.action_probs, 1e-30))
            ref_logp = score(ref_params, out.tokens)
            m = np.asarray(mask)
            kl_all = np.asarray(kl_of(old_logp, ref_logp))
            agree_all = np.asarray(old_logp).argmax(-1) == np.asarray(ref_logp).argmax(-1)
            adv = advantages(out.reward, mask, config.gamma)
            batch = (out.tokens, out.actions.astype(jnp.int32), old_logp, ref_logp, adv, mask)
            params, opt_state, loss = learn(params, opt_state, batch, k_learn)
            reward, true_reward, loss = np.asarray(out.reward), np.asarray(out.true_reward), np.asarray(loss)
            for i in range(seeds):
                vals = (reward[i].sum(1).mean(), true_reward[i].sum(1).mean(), m[i].sum(1).mean(), kl_all[i][m[i]].mean(),
                        agree_all[i][m[i]].mean(), loss[i])  # fmt: skip
                for k, v in zip(names, vals):
                    metrics[k][i, u] = float(v)
            if u + 1 in config.snapshots:
                host = jax.device_get(params)
                for i, sim in enumerate(sims):
                    seed_metrics = {k: v[i] for k, v in metrics.items()}
                    snapshots[i][u + 1] = _derived(sim, _take(host, i), config, u + 1, seed_metrics, time.perf_counter() - t0)
            bar.advance(1, ret=f"{metrics['return'][:, u].mean():.3f}")
    seconds = (time.perf_counter() - t0) / seeds
    host = jax.device_get(params)
    out = []
    for i, sim in enumerate(sims):
        seed_metrics = {k: v[i] for k, v in metrics.items()}
        out.append(FinetuneResult(_derived(sim, _take(host, i), config, config.updates, seed_metrics, seconds), seed_metrics, snapshots[i]))
    return out


def _take(tree, i: int):
    """Seed `i` of a host pytree stacked over seeds."""
    return jax.tree.map(lambda x: x[i], tree)


def _derived(sim: Simulator, params, config: FinetuneConfig, update: int, metrics: dict, seconds: float) -> Simulator:
    """A Simulator with fine-tuned params and a card that records where it came from."""
    card = {
        **sim.card,
        "process": {"name": "finetune", "config": dataclasses.asdict(config), "update": update},
        "reference": {"process": sim.card.get("process", {"name": "predict"}), "metrics": sim.card.get("metrics", {})},
        "metrics": {k: float(v[update - 1]) for k, v in metrics.items()} | {"finetune_seconds": round(seconds, 2)},
    }
    return Simulator(sim.spec, sim.fmt, jax.device_get(params), card)
