"""The prediction process: next-token log-loss training of a transformer on a corpus's tokens.

`make_train(config, data) -> train(key) -> (params, metrics)` is one pure function: the whole
run is a jitted `lax.scan` over optimiser steps, so seeds are `jax.vmap(train)(keys)`.

Which tokens carry loss (`PredictConfig.loss_on`):

* `"trajectory"` — every token after the prompt (states, actions, rewards, END): a simulator of
  the world *and* its characters;
* `"actions"` — ACTION tokens only: behaviour cloning.

Conditioning slots (`PredictConfig.character`, `PredictConfig.rtg`) put the acting character's
tag or the episode's return in the prompt (`simulacra.corpus.tokens`); with `rtg` the model is a
Decision Transformer.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simulacra.corpus.tokens import ACTION, END, REWARD, STATE, TrajectoryFormat, TrajVocab, encode
from simulacra.nets.transformer import Transformer, TransformerConfig

LOSS_ON = ("trajectory", "actions")


@dataclasses.dataclass(frozen=True)
class PredictConfig:
    """A prediction run (every field is recorded in the model card)."""

    loss_on: str = "trajectory"
    """Which tokens carry loss: "trajectory" (a simulator) or "actions" (behaviour cloning)."""
    character: bool = False
    """Put the acting character's tag in the prompt."""
    rtg: bool = False
    """Put the episode's observed return in the prompt (a Decision Transformer)."""
    d_model: int = 128
    """Residual width."""
    n_layers: int = 2
    """Transformer blocks."""
    n_heads: int = 4
    """Attention heads."""
    d_mlp: int = 512
    """MLP width."""
    steps: int = 2000
    """Optimiser steps."""
    batch_size: int = 32
    """Episodes per step."""
    lr: float = 1e-3
    """Peak learning rate (AdamW, linear warm-up then cosine decay)."""
    warmup: int = 100
    """Warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""

    def __post_init__(self) -> None:
        if self.loss_on not in LOSS_ON:
            raise ValueError(f"invalid PredictConfig.loss_on={self.loss_on!r}: one of {LOSS_ON}")
        for f in ("steps", "batch_size"):
            if getattr(self, f) < 1:
                raise ValueError(f"invalid PredictConfig.{f}={getattr(self, f)!r}: must be at least 1")
        if not 0 <= self.warmup <= self.steps:
            raise ValueError(f"invalid PredictConfig.warmup={self.warmup!r}: must be in 0..steps")
        if not self.lr > 0:
            raise ValueError(f"invalid PredictConfig.lr={self.lr!r}: must be positive")

    def transformer(self, fmt: TrajectoryFormat) -> TransformerConfig:
        return TransformerConfig(
            vocab_size=TrajVocab.SIZE,
            context=fmt.length,
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            d_mlp=self.d_mlp,
        )

    def format(self, params) -> TrajectoryFormat:
        return TrajectoryFormat(params, character=self.character, rtg=self.rtg)


class TrainData(NamedTuple):
    """Token rows and which next-token targets carry loss."""

    tokens: jax.Array  # (N, L) int32
    loss_mask: jax.Array  # (N, L) bool: position t is a target (predicted from tokens < t)


def train_data(corpus, config: PredictConfig) -> TrainData:
    """The corpus's token rows in the run's format, with its loss mask."""
    enc = encode(corpus, config.format(corpus.params))
    types = enc["types"]
    if config.loss_on == "actions":
        mask = types == ACTION
    else:
        mask = np.isin(types, (STATE, ACTION, REWARD, END))
        # s_0 belongs to the prompt: its tokens sit before the first action
        fmt = config.format(corpus.params)
        mask[:, fmt.step_start(0) : fmt.action_pos(0)] = False
    return TrainData(jnp.asarray(enc["tokens"]), jnp.asarray(mask))


def loss_fn(model: Transformer, params, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean next-token log-loss (nats) over the masked targets."""
    logits, _ = model.apply(params, tokens[:, :-1])  # (B, L-1, V)
    logp = jax.nn.log_softmax(logits, axis=-1)
    target = tokens[:, 1:]
    nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]  # (B, L-1)
    m = mask[:, 1:].astype(jnp.float32)
    return jnp.sum(nll * m) / jnp.maximum(m.sum(), 1.0)


class Metrics(NamedTuple):
    loss: jax.Array  # (steps,) training loss per step


def make_train(config: PredictConfig, data: TrainData, fmt: TrajectoryFormat) -> Callable:
    """`train(key) -> (params, Metrics)`: a whole run, jittable and vmappable over keys."""
    model = Transformer(config.transformer(fmt))
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.lr, max(config.warmup, 1), config.steps)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=config.weight_decay))
    n = data.tokens.shape[0]
    grad = jax.value_and_grad(lambda p, t, m: loss_fn(model, p, t, m))

    def train(key: jax.Array):
        k_init, k_data = jax.random.split(key)
        params = model.init(k_init, data.tokens[:1, :-1])
        state = opt.init(params)

        def step(carry, k):
            params, state = carry
            idx = jax.random.randint(k, (config.batch_size,), 0, n)
            loss, g = grad(params, data.tokens[idx], data.loss_mask[idx])
            updates, state = opt.update(g, state, params)
            return (optax.apply_updates(params, updates), state), loss

        (params, _), losses = jax.lax.scan(step, (params, state), jax.random.split(k_data, config.steps))
        return params, Metrics(loss=losses)

    return train


def evaluate(config: PredictConfig, params, data: TrainData, fmt: TrajectoryFormat, batch: int = 64) -> np.ndarray:
    """(N, L) per-token log-loss of the model on `data` (0 where the mask is off), aligned with
    the token positions (position t holds -log p(token t | tokens < t))."""
    model = Transformer(config.transformer(fmt))

    @jax.jit
    def per_token(tokens):
        logits, _ = model.apply(params, tokens[:, :-1])
        logp = jax.nn.log_softmax(logits, axis=-1)
        nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
        return jnp.concatenate([jnp.zeros((tokens.shape[0], 1)), nll], axis=1)

    out = []
    tokens = np.asarray(data.tokens)
    for i in range(0, len(tokens), batch):
        chunk = tokens[i : i + batch]
        pad = np.concatenate([chunk, np.repeat(chunk[:1], batch - len(chunk), 0)]) if len(chunk) < batch else chunk
        out.append(np.asarray(per_token(pad))[: len(chunk)])
    return np.concatenate(out) * np.asarray(data.loss_mask)
