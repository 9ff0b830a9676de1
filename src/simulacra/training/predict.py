"""The prediction process: next-token log-loss training of a transformer on a corpus's tokens.

`make_train(config, data, fmt) -> train(key) -> (params, metrics)` is one pure function: the whole
run is a jitted `lax.scan` over optimiser steps, so seeds are `jax.vmap(train)(keys)`.

Which tokens carry loss (`PredictConfig.loss_on`):

* `"trajectory"` — every token after the prompt (states, actions, rewards, END): a simulator of
  the world *and* its characters;
* `"actions"` — ACTION tokens only: behaviour cloning.

Conditioning slots (`PredictConfig.character`, `PredictConfig.rtg`) put the acting character's
tag in the prompt, or the return still to come before every state (`simulacra.corpus.tokens`);
with `rtg` the model is a Decision Transformer. Conditioning tokens are inputs, never targets.

The model's vocabulary is the format's compact one (`TrajectoryFormat.vocabulary`): token rows
are mapped to local ids here, and back by `simulacra.model.simulator`.

`fit(corpus, config, seed)` is the notebook/CLI entry point: the same run as `make_train`, cut
into a few jitted segments so that a progress bar can follow it, returning a `Simulator` whose
model card records the corpus hash, the config and the metrics.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simulacra.corpus.tokens import ACTION, END, REWARD, STATE, TrajectoryFormat, encode
from simulacra.model.simulator import Simulator
from simulacra.model.spec import ModelSpec
from simulacra.nets.transformer import Transformer, TransformerConfig

LOSS_ON = ("trajectory", "actions")


@dataclasses.dataclass(frozen=True)
class PredictConfig(ModelSpec):
    """A prediction run: the model it trains (the `ModelSpec` fields: format flags and
    architecture) and how (every field is recorded in the model card)."""

    loss_on: str = "trajectory"
    """Which tokens carry loss: "trajectory" (a simulator) or "actions" (behaviour cloning)."""
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
    myopic: bool = False
    """Myopic descent (Wu, Morris and Levine 2024): the loss at a position cannot shape what
    earlier positions compute for later ones (`nets.Transformer(..., myopic=True)`); the
    forward pass, and so the model it makes, is an ordinary one."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.myopic, bool):
            raise ValueError(f"invalid PredictConfig.myopic={self.myopic!r}: must be true or false")
        if self.loss_on not in LOSS_ON:
            raise ValueError(f"invalid PredictConfig.loss_on={self.loss_on!r}: one of {LOSS_ON}")
        for f in ("steps", "batch_size"):
            if getattr(self, f) < 1:
                raise ValueError(f"invalid PredictConfig.{f}={getattr(self, f)!r}: must be at least 1")
        if not 0 <= self.warmup <= self.steps:
            raise ValueError(f"invalid PredictConfig.warmup={self.warmup!r}: must be in 0..steps")
        if not self.lr > 0:
            raise ValueError(f"invalid PredictConfig.lr={self.lr!r}: must be positive")

    @property
    def spec(self) -> ModelSpec:
        """The model this run trains."""
        return ModelSpec.of(self)


class TrainData(NamedTuple):
    """Token rows (the format's compact ids) and which next-token targets carry loss."""

    tokens: jax.Array  # (N, L) int32 local ids
    loss_mask: jax.Array  # (N, L) bool: position t is a target (predicted from tokens < t)


def train_data(corpus, config: PredictConfig) -> TrainData:
    """The corpus's token rows in the run's format, with its loss mask."""
    fmt = config.format(corpus.params)
    enc = encode(corpus, fmt)
    types = enc["types"]
    if config.loss_on == "actions":
        mask = types == ACTION
    else:
        mask = np.isin(types, (STATE, ACTION, REWARD, END))
        # s_0 belongs to the prompt: its tokens sit before the first action
        mask[:, fmt.step_start(0) : fmt.action_pos(0)] = False
    return TrainData(jnp.asarray(fmt.to_local(enc["tokens"])), jnp.asarray(mask))


def loss_fn(model: Transformer, params, tokens: jax.Array, mask: jax.Array, denom: jax.Array | float | None = None,
            myopic: bool = False) -> jax.Array:  # fmt: skip
    """Next-token log-loss (nats) summed over the masked targets and divided by `denom` (default:
    their number, i.e. the mean); `myopic`: its gradient by myopic descent. With n > 1
    `future_heads`, the sum over heads of each head's loss (head k: the masked targets k ahead,
    divided by the same `denom`), as Gloeckle et al. weigh them equally."""
    n = model.config.future_heads
    if n == 1:  # the ordinary model, computed exactly as before multi-token heads existed
        logits, _ = model.apply(params, tokens[:, :-1], myopic=myopic)  # (B, L-1, V)
        logp = jax.nn.log_softmax(logits, axis=-1)
        target = tokens[:, 1:]
        nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]  # (B, L-1)
        m = mask[:, 1:].astype(jnp.float32)
        return jnp.sum(nll * m) / (jnp.maximum(m.sum(), 1.0) if denom is None else denom)
    logits, _ = model.apply(params, tokens[:, :-1], myopic=myopic, future=True)  # (B, L-1, n, V)
    logp = jax.nn.log_softmax(logits, axis=-1)
    total = 0.0
    for k in range(1, n + 1):
        target = tokens[:, k:]  # the token k ahead of input position t is tokens[t + k]
        nll = -jnp.take_along_axis(logp[:, : target.shape[1], k - 1], target[..., None], axis=-1)[..., 0]  # (B, L-k)
        total = total + jnp.sum(nll * mask[:, k:].astype(jnp.float32))
    m1 = mask[:, 1:].astype(jnp.float32)
    return total / (jnp.maximum(m1.sum(), 1.0) if denom is None else denom)


class Metrics(NamedTuple):
    loss: jax.Array  # (steps,) training loss per step


class Run(NamedTuple):
    """The pieces of a run: `init(key) -> (carry, xs)`, `steps(carry, xs) -> (carry, losses)` (a
    `lax.scan` over optimiser steps; `xs` = per-step keys and bucket ids, slice it to run part of
    the run), and `train(key) -> (params, Metrics)`, which is `init` then `steps` over all of
    `xs`. `carry = (params, opt_state)`."""

    init: Callable
    steps: Callable
    train: Callable


N_BUCKETS = 4


def _buckets(data: TrainData, n_buckets: int, batch_size: int, steps: int) -> tuple[list[np.ndarray], list[int], np.ndarray]:
    """Length buckets: episodes sorted by their token length (up to END) and cut into
    `n_buckets` groups of equal size; each group is cropped to its longest row. Returns the
    episode indices and crop length of each bucket, and a schedule (steps,) of bucket ids with
    each bucket's share of steps equal to its share of episodes, in a fixed shuffled order."""
    mask = np.asarray(data.loss_mask)
    n, full = mask.shape
    last = np.where(mask.any(1), full - 1 - np.argmax(mask[:, ::-1], axis=1), 0)
    order = np.argsort(last, kind="stable")
    groups = [g for g in np.array_split(order, min(n_buckets, n)) if len(g)]
    crops = [min(full, int(last[g].max()) + 1) for g in groups]
    # merge buckets whose crops are equal (nothing gained by splitting them)
    idx, crop = [groups[0]], [crops[0]]
    for g, c in zip(groups[1:], crops[1:]):
        if c == crop[-1]:
            idx[-1] = np.concatenate([idx[-1], g])
        else:
            idx.append(g)
            crop.append(c)
    share = np.array([len(g) for g in idx], float) * steps / n
    counts = np.floor(share).astype(int)
    counts[np.argsort(share - counts)[::-1][: steps - counts.sum()]] += 1
    schedule = np.random.default_rng(0).permutation(np.repeat(np.arange(len(idx)), counts)).astype(np.int32)
    return idx, crop, schedule


def make_run(config: PredictConfig, data: TrainData, fmt: TrajectoryFormat, n_buckets: int = N_BUCKETS) -> Run:
    """The run's pieces (see `Run`). Batches come from length buckets (`_buckets`): a step's
    episodes are cropped to the longest in its bucket, so little compute goes to padding. Each
    step's loss is summed over its target tokens and divided by a constant, the mean number of
    targets per batch over the corpus, so every target token weighs the same as without buckets."""
    model = Transformer(config.transformer(fmt))
    warm = max(config.warmup, 1)
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.lr, warm, max(config.steps, warm + 1))
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=config.weight_decay))
    idx, crop, plan = _buckets(data, n_buckets, config.batch_size, config.steps)
    denom = float(np.asarray(data.loss_mask).sum(1).mean()) * config.batch_size
    tokens_np, mask_np = np.asarray(data.tokens), np.asarray(data.loss_mask)  # gathered on the host: no eager programs
    banks = [(jnp.asarray(tokens_np[i, :c]), jnp.asarray(mask_np[i, :c])) for i, c in zip(idx, crop)]
    grad = jax.value_and_grad(lambda p, t, m: loss_fn(model, p, t, m, denom, config.myopic))

    def bucket_grad(b):
        tokens, mask = banks[b]

        def g(params, k):
            rows = jax.random.randint(k, (config.batch_size,), 0, tokens.shape[0])
            loss, gr = grad(params, tokens[rows], mask[rows])
            # report the mean loss per target token of this batch
            return loss * denom / jnp.maximum(mask[rows, 1:].sum(), 1), gr

        return g

    branches = [bucket_grad(b) for b in range(len(banks))]

    def init(key: jax.Array):
        k_init, k_data = jax.random.split(key)
        # one token is enough: the parameters' shapes and values do not depend on the input's
        # length, and the init program (traced through the whole forward pass) stays small
        params = model.init(k_init, data.tokens[:1, :1])
        return (params, opt.init(params)), (jax.random.split(k_data, config.steps), jnp.asarray(plan))

    def step(carry, x):
        params, state = carry
        k, b = x
        loss, g = jax.lax.switch(b, branches, params, k) if len(branches) > 1 else branches[0](params, k)
        updates, state = opt.update(g, state, params)
        return (optax.apply_updates(params, updates), state), loss

    def steps(carry, xs):
        return jax.lax.scan(step, carry, xs)

    def train(key: jax.Array):
        carry, xs = init(key)
        (params, _), losses = steps(carry, xs)
        return params, Metrics(loss=losses)

    return Run(init, steps, train)


def make_train(config: PredictConfig, data: TrainData, fmt: TrajectoryFormat) -> Callable:
    """`train(key) -> (params, Metrics)`: a whole run, jittable and vmappable over keys."""
    return make_run(config, data, fmt).train


def evaluate(config: PredictConfig, params, data: TrainData, fmt: TrajectoryFormat, batch: int = 64) -> np.ndarray:
    """(N, L) per-token log-loss of the model on `data` (0 where the mask is off), aligned with
    the token positions (position t holds -log p(token t | tokens < t))."""
    per_token = functools.partial(_per_token_fn(config.transformer(fmt)), params)
    out = []
    tokens = np.asarray(data.tokens)
    for i in range(0, len(tokens), batch):
        chunk = tokens[i : i + batch]
        pad = np.concatenate([chunk, np.repeat(chunk[:1], batch - len(chunk), 0)]) if len(chunk) < batch else chunk
        out.append(np.asarray(per_token(pad))[: len(chunk)])
    return np.concatenate(out) * np.asarray(data.loss_mask)


@functools.lru_cache(maxsize=16)
def _per_token_fn(architecture: TransformerConfig) -> Callable:
    """`(params, tokens, hooks=None) -> (B, L) per-token log-loss`, compiled once per architecture
    (not once per `evaluate` call); `hooks` (a `nets.transformer.Hooks`, e.g. a steering vector)
    are applied in the forward pass."""
    from simulacra.nets.transformer import Hooks

    model = Transformer(architecture)

    @jax.jit
    def run(params, tokens, hooks):
        logits, _ = model.apply(params, tokens[:, :-1], hooks)
        logp = jax.nn.log_softmax(logits, axis=-1)
        nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
        return jnp.concatenate([jnp.zeros((tokens.shape[0], 1)), nll], axis=1)

    def per_token(params, tokens, hooks=None):
        return run(params, tokens, hooks if hooks is not None else Hooks())

    return per_token


def _segment(steps: int) -> int:
    """Steps per jitted segment of `fit`: a divisor of `steps`, about a tenth of it (one
    compilation, and a progress bar that moves)."""
    for d in range(max(1, steps // 10), 0, -1):
        if steps % d == 0:
            return d if d >= steps // 50 else steps
    return steps


def fit(corpus, config: PredictConfig, seed: int = 0, progress: bool = True):
    """Train a model on `corpus` and return it as a `simulacra.model.Simulator` whose card
    records the corpus (hash, world, mixture, size), the config, the seed and the metrics. The
    result is the same as `make_train(...)(jax.random.PRNGKey(seed))`."""
    return _fit(corpus, config, [seed], progress, batched=False)[0]


def fit_seeds(corpus, config: PredictConfig, seeds, progress: bool = True) -> list:
    """`fit` for several seeds at once: one compilation, the seeds' runs `vmap`ped side by side
    (each equal to its own `fit` up to float rounding). The card's `train_seconds` is the
    batch's wall-clock divided by the number of seeds."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("fit_seeds needs at least one seed")
    return _fit(corpus, config, seeds, progress, batched=True)


def _fit(corpus, config: PredictConfig, seeds: list[int], progress: bool, batched: bool) -> list:
    import simulacra

    fmt = config.format(corpus.params)
    data = train_data(corpus, config)
    params, loss, seconds = train_loop(config, data, fmt, seeds, progress, batched)
    out = []
    for j, seed in enumerate(seeds):
        card = {
            "simulacra_version": simulacra.__version__,
            "process": {"name": "predict", "config": dataclasses.asdict(config)},
            "seed": seed,
            "corpus": {
                "sha256": corpus.content_hash(),
                "path": str(corpus.path) if getattr(corpus, "path", None) else None,
                "mixture": corpus.mixture.to_list(),
                "seed": corpus.seed,
                "n_episodes": corpus.n_episodes,
            },
            "metrics": {**loss_summary(loss[j], seconds), "tokens_seen": int(config.steps * config.batch_size * (fmt.length - 1))},
        }
        out.append(Simulator(config.spec, fmt, params[j], card))
    return out


def loss_summary(loss, seconds: float) -> dict[str, float]:
    """A model card's training metrics from one seed's per-step losses: the mean loss over the
    first and the last tenth of the steps, and the wall time of the (possibly vmapped) run."""
    loss = np.asarray(loss)
    tail = max(1, len(loss) // 10)
    return {"train_loss_first": float(loss[:tail].mean()), "train_loss_last": float(loss[-tail:].mean()), "train_seconds": round(seconds, 2)}


def train_loop(config: PredictConfig, data: TrainData, fmt, seeds: list[int], progress: bool, batched: bool):
    """Run `make_run(config, data, fmt)` for `seeds` (vmapped when `batched`), in jitted segments
    behind a progress bar: (each seed's params, losses (seeds, steps), seconds per seed). `fmt`
    is anything `config.transformer` reads (`vocab_size`, `length`): the gridworld's
    `TrajectoryFormat` or the text world's `TextFormat`."""
    import time

    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from simulacra.progress import progress as meter

    run = make_run(config, data, fmt)
    seg = _segment(config.steps)
    if batched:
        # the bucket schedule (xs[1]) is the same for every seed: kept unbatched, so that
        # `lax.switch` still picks one branch per step instead of running all of them
        init = jax.jit(jax.vmap(run.init, out_axes=(0, (0, None))))
        steps = jax.jit(jax.vmap(run.steps, in_axes=(0, (0, None))), donate_argnums=0)
        keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    else:
        init, steps = jax.jit(run.init), jax.jit(run.steps, donate_argnums=0)
        keys = jax.random.PRNGKey(seeds[0])
    t0 = time.perf_counter()
    carry, xs = init(keys)
    losses = []
    label = "training" if len(seeds) == 1 else f"training {len(seeds)} seeds"
    columns = (TextColumn(label), BarColumn(), TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with meter(label, config.steps, "steps", enabled=progress, fields={"loss": "-"}, columns=columns) as bar:
        for i in range(0, config.steps, seg):
            part = (xs[0][..., i : i + seg, :], xs[1][i : i + seg]) if batched else jax.tree.map(lambda x: x[i : i + seg], xs)
            carry, loss = steps(carry, part)
            losses.append(np.asarray(loss).reshape(len(seeds), -1))
            bar.advance(min(seg, config.steps - i), loss=f"{float(losses[-1][:, -max(1, seg // 10):].mean()):.4f}")
    seconds = (time.perf_counter() - t0) / len(seeds)
    loss = np.concatenate(losses, axis=1)
    if not batched:
        return [carry[0]], loss, seconds
    host = jax.device_get(carry[0])  # each seed's slice taken on the host (no program per leaf shape)
    return [jax.tree.map(lambda x, j=j: x[j], host) for j in range(len(seeds))], loss, seconds
