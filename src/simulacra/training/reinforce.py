"""The reinforcement process: PPO from scratch in the PureJaxRL manner, on symbolic observations.

`make_train(config, params) -> train(key) -> (net_params, Metrics)` is one pure function: the
whole run is jitted, with the rollout, GAE, epochs and minibatches as nested `lax.scan`s inside
a scan over updates, so many seeds are `jax.vmap(train)(keys)`.

What differs from PureJaxRL's `ppo.py`:

* time-limit truncation is kept apart from termination: a truncated step bootstraps from the
  value of its true successor (`Step.final_obs`, the observation before the auto-reset), a
  terminated one does not (see `gae`);
* the agent learns from the *observed* reward (tampered, delayed, sparse as the world says);
  the true reward is only measured;
* metrics are reduced inside jit to one number per update (episodes that ended during that
  update's rollout), never a per-step log of the run.

The actor-critic (`ActorCritic`) reads the (H, W, 3) uint8 observation as a one-hot tile id, the
agent mask and the two flag bits per cell, through an MLP or a small CNN, with separate actor
and critic torsos and orthogonal initialisation (scale sqrt(2) in the torso, 0.01 on the policy
head, 1 on the value head; CleanRL / PureJaxRL).

The feedback gap has three knobs: `PPOConfig.gamma`, and the world's `reward_delay` and
`sparse` (`WorldParams`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.linen.initializers import constant
from flax.training.train_state import TrainState

from simulacra.model.checkpoint import CheckpointError, read_card, read_params, write_checkpoint
from simulacra.world.core import COIN, EVENT_NAMES, observe, reset, step_auto_reset, success
from simulacra.world.params import Tile, WorldParams

NETWORKS = ("mlp", "cnn")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """A PPO run (every field is recorded in the agent card). Defaults solve `coin-9x9`."""

    n_envs: int = 64
    """Worlds stepped in parallel (vmapped, auto-reset)."""
    n_steps: int = 32
    """Rollout length per update, in steps of each world."""
    total_steps: int = 2_000_000
    """Environment steps of the whole run (rounded down to whole updates)."""
    gamma: float = 0.99
    """Discount: one of the feedback-gap knobs (with the world's reward_delay and sparse)."""
    gae_lambda: float = 0.95
    """GAE trace parameter."""
    clip_eps: float = 0.2
    """PPO ratio clip (also clips the value update)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    lr: float = 2.5e-3
    """Adam learning rate (peak, if annealed)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over the run."""
    n_epochs: int = 4
    """Passes over each rollout."""
    n_minibatches: int = 4
    """Minibatches per epoch (must divide n_envs * n_steps)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    norm_adv: bool = True
    """Normalise advantages within each minibatch."""
    network: str = "mlp"
    """"mlp" or "cnn" (see `ActorCritic`)."""
    hidden: tuple[int, ...] = (64, 64)
    """Widths of the dense layers of each torso (tanh)."""
    channels: tuple[int, ...] = (16, 32)
    """Channels of the 3x3 convolutions (ReLU) of each torso; used only by "cnn"."""

    def __post_init__(self) -> None:
        def bad(field, allowed):
            raise ValueError(f"invalid PPOConfig.{field}={getattr(self, field)!r}: {allowed}")

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))

        for f in ("hidden", "channels"):  # lists (from JSON) become tuples, so configs stay hashable
            v = getattr(self, f)
            if not isinstance(v, (list, tuple)) or not all(is_int(h) and h >= 1 for h in v):
                bad(f, "must be a sequence of positive integers")
            object.__setattr__(self, f, tuple(int(h) for h in v))
        for f in ("n_envs", "n_steps", "total_steps", "n_epochs", "n_minibatches"):
            if not is_int(getattr(self, f)) or getattr(self, f) < 1:
                bad(f, "must be a positive integer")
        for f in ("anneal_lr", "norm_adv"):
            if not isinstance(getattr(self, f), bool):
                bad(f, "must be true or false")
        for f in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, f) <= 1.0:
                bad(f, "must be in [0, 1]")
        for f in ("clip_eps", "lr", "max_grad_norm"):
            if not getattr(self, f) > 0:
                bad(f, "must be positive")
        for f in ("ent_coef", "vf_coef"):
            if not getattr(self, f) >= 0:
                bad(f, "must be >= 0")
        if self.network not in NETWORKS:
            bad("network", f"one of {NETWORKS}")
        if not self.hidden:
            bad("hidden", "needs at least one layer")
        if self.network == "cnn" and not self.channels:
            bad("channels", 'needs at least one convolution for network="cnn"')
        if self.total_steps < self.batch_size:
            bad("total_steps", f"must be at least n_envs * n_steps = {self.batch_size} (one update)")
        if self.batch_size % self.n_minibatches:
            bad("n_minibatches", f"must divide n_envs * n_steps = {self.batch_size}")

    # derived fields (computed here only)
    @property
    def batch_size(self) -> int:
        """Transitions per update (derived: n_envs * n_steps)."""
        return self.n_envs * self.n_steps

    @property
    def minibatch_size(self) -> int:
        """Transitions per gradient step (derived)."""
        return self.batch_size // self.n_minibatches

    @property
    def n_updates(self) -> int:
        """Updates in the run (derived: total_steps // batch_size)."""
        return self.total_steps // self.batch_size

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "hidden": list(self.hidden), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict) -> PPOConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown PPOConfig field(s) {sorted(unknown)}; allowed: {sorted(fields)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# the actor-critic


def orthogonal(scale: float = 1.0) -> Callable:
    """Flax's `orthogonal` initialiser (a Haar-random orthogonal matrix: QR of a Gaussian with
    sign(diag R) fixed) computed by Gram-Schmidt, applied twice, instead of LAPACK's QR.

    Why: under `jax.vmap(train)` the QR becomes a batched LAPACK call that jaxlib 0.10.2 fans
    out onto the CPU thread pool it already runs on, and the run intermittently deadlocks (seen
    on the 2-core machine). Gram-Schmidt gives the same Q up to rounding, with matmuls only."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        n_rows, n_cols = int(np.prod(shape[:-1])), shape[-1]
        a = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), jnp.float32)
        cols = jnp.arange(a.shape[1])

        def column(j, q):  # orthonormalise column j against columns < j (twice is enough)
            v = a[:, j]
            for _ in range(2):
                v = v - q @ jnp.where(cols < j, q.T @ v, 0.0)
            return q.at[:, j].set(v / jnp.linalg.norm(v))

        q = jax.lax.fori_loop(0, a.shape[1], column, jnp.zeros_like(a))
        if n_rows < n_cols:
            q = q.T
        return (scale * q.reshape(shape)).astype(dtype)

    return init


LEGACY_TILES, LEGACY_FLAGS = 9, 2
"""The input sizes of worlds without oracle tiles: the tiles and flag bits there were before oracle
worlds, so that those worlds' networks (and every PPO result on them) stay exactly as they were."""


def encode_obs(obs: jax.Array, oracle: bool = False) -> jax.Array:
    """(..., H, W, 3) uint8 observation -> (..., H, W, Tile.COUNT + 5) float32 network input:
    one-hot tile id, agent mask, flag bits (interruption disabled, holding the key, the hidden bit's
    status as two bits). `oracle=False` (worlds without oracle tiles): the first `LEGACY_TILES` tile
    ids and `LEGACY_FLAGS` flag bits only, (..., H, W, 12)."""
    n_tiles, n_flags = (Tile.COUNT, 4) if oracle else (LEGACY_TILES, LEGACY_FLAGS)
    tile = jax.nn.one_hot(obs[..., 0], n_tiles, dtype=jnp.float32)
    agent = obs[..., 1:2].astype(jnp.float32)
    flags = ((obs[..., 2:3] >> jnp.arange(n_flags, dtype=jnp.uint8)) & 1).astype(jnp.float32)
    return jnp.concatenate([tile, agent, flags], axis=-1)


class Torso(nn.Module):
    """3x3 convolutions (ReLU, "cnn" only), flatten, dense layers (tanh)."""

    network: str
    hidden: tuple[int, ...]
    channels: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:  # (..., H, W, C)
        if self.network == "cnn":
            for c in self.channels:
                x = nn.relu(nn.Conv(c, (3, 3), kernel_init=orthogonal(np.sqrt(2)), bias_init=constant(0.0))(x))
        x = x.reshape(x.shape[:-3] + (-1,))  # (..., H * W * C)
        for h in self.hidden:
            x = nn.tanh(nn.Dense(h, kernel_init=orthogonal(np.sqrt(2)), bias_init=constant(0.0))(x))
        return x


class ActorCritic(nn.Module):
    """Policy logits and state value from an observation; separate actor and critic torsos."""

    num_actions: int
    network: str = "mlp"
    hidden: tuple[int, ...] = (64, 64)
    channels: tuple[int, ...] = (16, 32)
    oracle: bool = False  # the world has oracle tiles (`encode_obs`)

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:  # (..., H, W, 3) uint8
        x = encode_obs(obs, self.oracle)
        actor = Torso(self.network, self.hidden, self.channels, name="actor")(x)
        logits = nn.Dense(self.num_actions, kernel_init=orthogonal(0.01), bias_init=constant(0.0), name="policy")(actor)
        critic = Torso(self.network, self.hidden, self.channels, name="critic")(x)
        value = nn.Dense(1, kernel_init=orthogonal(1.0), bias_init=constant(0.0), name="value")(critic)
        return logits, value[..., 0]  # (..., A), (...)


def network(config: PPOConfig, params: WorldParams) -> ActorCritic:
    """The `ActorCritic` a config describes, for a world's action count."""
    return ActorCritic(params.num_actions, config.network, config.hidden, config.channels, params.has_oracle)


def init_params(config: PPOConfig, params: WorldParams, key: jax.Array) -> dict:
    """Fresh network variables."""
    return network(config, params).init(key, jnp.zeros((*params.shape, 3), jnp.uint8))


@functools.lru_cache(maxsize=64)
def make_policy(config: PPOConfig, params: WorldParams, greedy: bool = False) -> Callable:
    """`policy(net_params, obs, key) -> (action, probs)`: sample an action (the most likely one if
    `greedy`) for an (H, W, 3) observation, or a batch (..., H, W, 3) of them; probs (..., A)."""
    model = network(config, params)

    def policy(net_params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        logits, _ = model.apply(net_params, obs)
        action = jnp.argmax(logits, -1) if greedy else jax.random.categorical(key, logits)
        return action.astype(jnp.int32), jax.nn.softmax(logits, -1)

    return policy


# ---------------------------------------------------------------------------------------------
# advantages


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float,
    lam: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimates over a time-major rollout (T, ...): (advantages, returns).

    `next_values[t]` is the value of step t's true successor (the observation before any
    auto-reset). A terminated step has no future (delta = r - V); a truncated one bootstraps
    from `next_values` (delta = r + gamma V' - V); either way the trace stops at an episode's
    end, so advantages never leak across episodes. Returns are advantages + values (the value
    targets)."""
    cont = 1.0 - terminated.astype(jnp.float32)
    ends = (terminated | truncated).astype(jnp.float32)
    deltas = rewards + gamma * cont * next_values - values

    def back(adv_next, x):
        delta, end = x
        adv = delta + gamma * lam * (1.0 - end) * adv_next
        return adv, adv

    _, adv = jax.lax.scan(back, jnp.zeros_like(values[0]), (deltas, ends), reverse=True)
    return adv, adv + values


# ---------------------------------------------------------------------------------------------
# training


class EpisodeStats(NamedTuple):
    """Running totals of each world's current episode (all (n_envs, ...))."""

    reward: jax.Array  # observed return so far, float32
    true_reward: jax.Array  # true return so far, float32
    length: jax.Array  # steps so far, int32
    events: jax.Array  # (n_envs, len(EVENT_NAMES)) int32 event counts, `EVENT_NAMES` order


class Transition(NamedTuple):
    """One step of every world in a rollout."""

    obs: jax.Array  # (n_envs, H, W, 3) uint8 acted on
    action: jax.Array  # (n_envs,) int32
    log_prob: jax.Array  # (n_envs,) behaviour log-probability of the action
    value: jax.Array  # (n_envs,) V(obs)
    reward: jax.Array  # (n_envs,) observed reward
    terminated: jax.Array  # (n_envs,) bool
    truncated: jax.Array  # (n_envs,) bool
    final_obs: jax.Array  # (n_envs, H, W, 3) successor before auto-reset (for bootstrapping)
    finished: EpisodeStats  # totals of the episodes that ended at this step (where ended)


class Runner(NamedTuple):
    """The carry of the scan over updates."""

    train_state: TrainState
    env_state: object  # batched `State`
    obs: jax.Array  # (n_envs, H, W, 3) uint8
    episode: EpisodeStats
    key: jax.Array


class Batch(NamedTuple):
    """What one gradient step sees (leading axis: transitions)."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array


class Losses(NamedTuple):
    total: jax.Array
    value: jax.Array
    policy: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array
    clip_frac: jax.Array


class Metrics(NamedTuple):
    """One entry per update (shape (n_updates,) unless noted). Episode metrics average the
    episodes that ended during that update's rollout (nan if none did); losses average the
    update's gradient steps."""

    steps: jax.Array  # environment steps taken by the end of the update
    episodes: jax.Array  # episodes that ended during the rollout
    observed_return: jax.Array
    true_return: jax.Array
    success: jax.Array  # fraction of episodes that collected every coin of the world
    length: jax.Array
    events: jax.Array  # (n_updates, len(EVENT_NAMES)) event counts per episode, `EVENT_NAMES` order
    entropy: jax.Array
    value_loss: jax.Array
    policy_loss: jax.Array
    approx_kl: jax.Array
    clip_frac: jax.Array


def make_train(config: PPOConfig, params: WorldParams) -> Callable:
    """`train(key, gamma=None) -> (net_params, Metrics)`: a whole PPO run, jittable and
    vmappable over keys. `gamma` (a traced scalar) replaces `config.gamma`, so that one compiled
    program trains at many discounts (`jax.vmap(train)(keys, gammas)`, as the onset kind does);
    left out, the discount is `config.gamma`, a constant of the program."""

    def train(key: jax.Array, gamma: jax.Array | None = None):
        init, advance = make_stages(config, params, gamma)
        runner, metrics = advance(init(key), jnp.arange(config.n_updates))
        return runner.train_state.params, metrics

    return train


def make_stages(config: PPOConfig, params: WorldParams, gamma: jax.Array | float | None = None) -> tuple[Callable, Callable]:
    """The same run in pieces: `init(key) -> Runner`, and `advance(runner, updates) -> (runner,
    Metrics)`, which performs the updates whose indices `updates` (an int array) lists. Running
    `advance` on `arange(0, k)` then `arange(k, n_updates)` is the run `make_train` does in one
    call (the learning-rate schedule counts the optimiser's own steps); between the pieces a
    caller can evaluate `runner.train_state.params`, as `bench/ppo_speed.py` does every 4 updates.
    `gamma`, if given, replaces `config.gamma` (it may be a traced value)."""
    discount = config.gamma if gamma is None else gamma
    model = network(config, params)
    n_envs, n_updates = config.n_envs, config.n_updates
    steps_per_update = config.n_epochs * config.n_minibatches  # gradient steps per update

    def schedule(count):
        frac = 1.0 - (count // steps_per_update) / n_updates
        return config.lr * frac

    tx = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(schedule if config.anneal_lr else config.lr, eps=1e-5),
    )
    batch_reset = jax.vmap(reset, in_axes=(0, None))
    batch_step = jax.vmap(step_auto_reset, in_axes=(0, 0, 0, None))

    def env_step(runner: Runner, _) -> tuple[Runner, Transition]:
        key, k_act, k_step = jax.random.split(runner.key, 3)
        logits, value = model.apply(runner.train_state.params, runner.obs)  # (n_envs, A), (n_envs,)
        action = jax.random.categorical(k_act, logits).astype(jnp.int32)
        log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], -1)[:, 0]
        env_state, st = batch_step(jax.random.split(k_step, n_envs), runner.env_state, action, params)
        ep = runner.episode
        ep = EpisodeStats(
            ep.reward + st.reward,
            ep.true_reward + st.true_reward,
            ep.length + 1,
            ep.events + st.events.as_array().astype(jnp.int32),
        )
        ended = st.terminated | st.truncated
        fresh = jax.tree.map(lambda x: jnp.where(ended.reshape(-1, *[1] * (x.ndim - 1)), 0, x).astype(x.dtype), ep)
        tr = Transition(runner.obs, action, log_prob, value, st.reward, st.terminated, st.truncated, st.final_obs, ep)
        return runner._replace(env_state=env_state, obs=st.obs, episode=fresh, key=key), tr

    def loss_fn(net_params, b: Batch) -> tuple[jax.Array, Losses]:
        logits, value = model.apply(net_params, b.obs)
        logp_all = jax.nn.log_softmax(logits)
        log_prob = jnp.take_along_axis(logp_all, b.action[:, None], -1)[:, 0]
        # value loss, clipped around the rollout's values (PureJaxRL / CleanRL)
        v_clipped = b.value + jnp.clip(value - b.value, -config.clip_eps, config.clip_eps)
        value_loss = 0.5 * jnp.maximum(jnp.square(value - b.target), jnp.square(v_clipped - b.target)).mean()
        log_ratio = log_prob - b.log_prob
        ratio = jnp.exp(log_ratio)
        adv = b.advantage
        if config.norm_adv:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        clipped = jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps)
        policy_loss = -jnp.minimum(ratio * adv, clipped * adv).mean()
        entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, -1).mean()
        total = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
        approx_kl = ((ratio - 1.0) - log_ratio).mean()  # the low-variance estimator k3
        clip_frac = jnp.mean(jnp.abs(ratio - 1.0) > config.clip_eps)
        return total, Losses(total, value_loss, policy_loss, entropy, approx_kl, clip_frac)

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def minibatch_step(ts: TrainState, b: Batch) -> tuple[TrainState, Losses]:
        grads, losses = grad_fn(ts.params, b)
        return ts.apply_gradients(grads=grads), losses

    def epoch(carry: tuple[TrainState, jax.Array], _, batch: Batch):
        ts, key = carry
        key, k_perm = jax.random.split(key)
        perm = jax.random.permutation(k_perm, config.batch_size)
        shaped = jax.tree.map(lambda x: x[perm].reshape(config.n_minibatches, config.minibatch_size, *x.shape[1:]), batch)
        ts, losses = jax.lax.scan(minibatch_step, ts, shaped)
        return (ts, key), losses

    def update(runner: Runner, i: jax.Array) -> tuple[Runner, Metrics]:
        runner, traj = jax.lax.scan(env_step, runner, None, length=config.n_steps)  # (n_steps, n_envs, ...)
        _, next_values = model.apply(runner.train_state.params, traj.final_obs)  # (n_steps, n_envs)
        adv, targets = gae(traj.reward, traj.value, next_values, traj.terminated, traj.truncated, discount, config.gae_lambda)
        flat = lambda x: x.reshape(config.batch_size, *x.shape[2:])  # noqa: E731
        batch = Batch(flat(traj.obs), flat(traj.action), flat(traj.log_prob), flat(traj.value), flat(adv), flat(targets))
        key, k_epochs = jax.random.split(runner.key)
        (ts, _), losses = jax.lax.scan(
            functools.partial(epoch, batch=batch), (runner.train_state, k_epochs), None, length=config.n_epochs
        )
        runner = runner._replace(train_state=ts, key=key)

        ended = (traj.terminated | traj.truncated).astype(jnp.float32)  # (n_steps, n_envs)
        n = ended.sum()
        fin = traj.finished

        def mean(x):  # over the episodes that ended
            e = ended.reshape(*ended.shape, *[1] * (x.ndim - 2))
            return jnp.where(n > 0, jnp.sum(x * e, axis=(0, 1)) / jnp.maximum(n, 1.0), jnp.nan)

        metrics = Metrics(
            steps=(i + 1) * config.batch_size,
            episodes=n.astype(jnp.int32),
            observed_return=mean(fin.reward),
            true_return=mean(fin.true_reward),
            success=mean(success(fin.events[..., COIN], params).astype(jnp.float32)),
            length=mean(fin.length.astype(jnp.float32)),
            events=mean(fin.events.astype(jnp.float32)),
            entropy=losses.entropy.mean(),
            value_loss=losses.value.mean(),
            policy_loss=losses.policy.mean(),
            approx_kl=losses.approx_kl.mean(),
            clip_frac=losses.clip_frac.mean(),
        )
        return runner, metrics

    def init(key: jax.Array) -> Runner:
        k_init, k_reset, k_run = jax.random.split(key, 3)
        net_params = init_params(config, params, k_init)
        ts = TrainState.create(apply_fn=model.apply, params=net_params, tx=tx)
        env_state = batch_reset(jax.random.split(k_reset, n_envs), params)
        obs = jax.vmap(observe, in_axes=(0, None))(env_state, params)
        zeros = EpisodeStats(
            jnp.zeros(n_envs), jnp.zeros(n_envs), jnp.zeros(n_envs, jnp.int32), jnp.zeros((n_envs, len(EVENT_NAMES)), jnp.int32)
        )
        return Runner(ts, env_state, obs, zeros, k_run)

    def advance(runner: Runner, updates: jax.Array) -> tuple[Runner, Metrics]:
        return jax.lax.scan(update, runner, updates)

    return init, advance


# ---------------------------------------------------------------------------------------------
# saving and loading


AGENT_SCHEMA = "simulacra.agent"
AGENT_SCHEMA_VERSION = 1


def save_agent(
    path: str | Path, net_params, config: PPOConfig, params: WorldParams, card: dict | None = None, overwrite: bool = False
) -> Path:
    """Write an agent's network (msgpack) and its card (`card.json`: schema, the params file's
    SHA-256, the PPOConfig, the world, and whatever `card` adds, e.g. metrics) to `path`, atomically."""
    full = {"process": {"name": "reinforce", "algorithm": "ppo"}, **(card or {}), "config": config.to_dict(), "world": params.to_dict()}
    return write_checkpoint(path, net_params, full, AGENT_SCHEMA, AGENT_SCHEMA_VERSION, "agent", overwrite)


def load_agent(path: str | Path) -> tuple[dict, PPOConfig, WorldParams, dict]:
    """(net_params, config, world params, card) of an agent directory, verified (schema,
    checksum, parameter shapes); any problem raises `CheckpointError` naming it."""
    path = Path(path)
    card = read_card(path, AGENT_SCHEMA, AGENT_SCHEMA_VERSION, "agent", "agent card")
    try:
        config = PPOConfig.from_dict(card["config"])
        params = WorldParams.from_dict(card["world"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the card's config or world is invalid ({e})") from None
    target = jax.eval_shape(lambda: init_params(config, params, jax.random.PRNGKey(0)))
    return read_params(path, card, target, "network"), config, params, card


__all__ = [
    "ActorCritic",
    "Metrics",
    "PPOConfig",
    "encode_obs",
    "gae",
    "init_params",
    "load_agent",
    "make_policy",
    "make_stages",
    "make_train",
    "network",
    "save_agent",
    "success",
]
