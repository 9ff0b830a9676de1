"""A GPT-style causal transformer (Flax Linen) with every activation named and patchable.

Names follow TransformerLens, so probes, patching and steering code reads the same here:

    hook_embed, hook_pos_embed, [hook_grid_embed]
    blocks.{i}.hook_resid_pre, blocks.{i}.ln1.hook_normalized,
    blocks.{i}.attn.hook_q, .hook_k, .hook_v            (B, T, H, Dh)
    blocks.{i}.attn.hook_attn_scores, .hook_pattern      (B, H, T, T)
    blocks.{i}.attn.hook_z                               (B, T, H, Dh)
    blocks.{i}.hook_attn_out, blocks.{i}.hook_resid_mid, blocks.{i}.ln2.hook_normalized,
    blocks.{i}.mlp.hook_pre, blocks.{i}.mlp.hook_post    (B, T, d_mlp)
    blocks.{i}.hook_mlp_out, blocks.{i}.hook_resid_post,
    ln_final.hook_normalized

`model.apply(params, tokens, hooks=Hooks(...))` returns `(logits, cache)`: `cache` maps the names
asked for (`names`, default none) to their values, and `add` / `replace` change any named
activation on the way (after `replace`, then `add`; the cache holds the changed value). Nothing
is global: a call's hooks live only in its arguments.

An optional **grid embedding** (`grid_side > 0`) adds a learned `row[r] + col[c]` vector to
every token that names a cell (r, c) -- a token id listed in `grid_tokens` (the agent's CELL
tokens) or a position listed in `grid_positions` (the scene's tile at that cell). Both kinds of
token share the same row and column tables, so "the coin's tile is at (r, c)" and "the agent
is at (r, c)" are close in the residual stream from the start, and a cell the training data
never showed with a coin still has trained row and column vectors (docs/simulators.md,
"Held-out layouts"). A position listed in `grid_positions` gets no learned position vector of
its own (its `hook_pos_embed` is zero): it is placed by its row and column only, so what the
model reads off a scene tile's place is the same two vectors wherever the coin has been seen.
(With a free per-position vector as well, held-out cells' vectors were never trained with a
coin on them and the model generalised less: 0.805 vs 0.895 of optimal on held-out layouts.)

Optional **numeric tokens** (`numeric_ids`, `numeric_values`): each listed token id is embedded
as `base + value * slope` (two learned vectors) instead of by a row of its own, as the original
Decision Transformer embeds a return-to-go with a linear layer. A return-to-go bin that never
occurred in training (in coin worlds only 0 and 1 occur) is then placed on the line between
those that did, instead of keeping its random initial row (docs/simulators.md).

Incremental decoding (acting and dreaming) passes a key/value cache:
`model.apply(params, tokens, hooks, kv=KVCache.empty(config, batch))` returns
`(logits, cache, kv)`; the new tokens sit at positions `kv.index ..` and attend to everything
before them. Feeding a sequence in pieces gives the same logits as feeding it whole. Hooks work
the same way; in this mode `hook_k`/`hook_v` hold the new positions only and the attention
scores and pattern are `(B, H, T_new, context)`.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Architecture of a `Transformer` (stored in every checkpoint's model card)."""

    vocab_size: int
    """Number of token ids."""
    context: int
    """Longest sequence the positional embedding covers."""
    d_model: int = 128
    """Width of the residual stream."""
    n_layers: int = 2
    """Number of blocks."""
    n_heads: int = 4
    """Attention heads per block (d_model must be divisible by it)."""
    d_mlp: int = 512
    """Hidden width of each block's MLP."""
    grid_side: int = 0
    """Side of the grid embedding's row and column tables (0: no grid embedding)."""
    grid_tokens: tuple[int, ...] = ()
    """Per token id, the cell `r * grid_side + c` it names, or -1 (length vocab_size, or empty)."""
    grid_positions: tuple[int, ...] = ()
    """Per position, the cell its token describes, or -1 (length context, or empty)."""
    numeric_ids: tuple[int, ...] = ()
    """Token ids embedded as the number they stand for (`numeric_values`), not by a row of their own."""
    numeric_values: tuple[float, ...] = ()
    """The number each of `numeric_ids` stands for (same length)."""
    dtype: str = "float32"
    """Compute precision: "float32", or "bfloat16" (mixed precision: parameters, LayerNorm
    statistics, attention softmax, logits and everything recorded by hooks stay float32; the
    matrix products and activations in between run in bfloat16)."""
    future_heads: int = 1
    """Multi-token prediction (Gloeckle et al. 2024): output heads for the next 1 … n tokens. The
    last block is head 1 (the ordinary next-token model: with 1 the model is the plain one,
    parameter for parameter); each further head k is a block of its own reading the same trunk
    (the residual stream before the last block), through the shared final LayerNorm and
    unembedding, and predicts the token k ahead (`Transformer(..., future=True)`)."""

    def __post_init__(self) -> None:
        for f in ("vocab_size", "context", "d_model", "n_layers", "n_heads", "d_mlp", "future_heads"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"invalid TransformerConfig.{f}={v!r}: must be a positive integer")
        if self.dtype not in DTYPES:
            raise ValueError(f"invalid TransformerConfig.dtype={self.dtype!r}: one of {', '.join(DTYPES)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"invalid TransformerConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        # JSON (a model card) gives lists; the config must stay hashable
        object.__setattr__(self, "grid_tokens", tuple(int(x) for x in self.grid_tokens))
        object.__setattr__(self, "grid_positions", tuple(int(x) for x in self.grid_positions))
        object.__setattr__(self, "numeric_ids", tuple(int(x) for x in self.numeric_ids))
        object.__setattr__(self, "numeric_values", tuple(float(x) for x in self.numeric_values))
        if len(self.numeric_ids) != len(self.numeric_values):
            raise ValueError(
                f"invalid TransformerConfig: {len(self.numeric_ids)} numeric_ids but {len(self.numeric_values)} numeric_values"
            )
        if any(i < 0 or i >= self.vocab_size for i in self.numeric_ids) or len(set(self.numeric_ids)) != len(self.numeric_ids):
            raise ValueError(f"invalid TransformerConfig.numeric_ids: must be distinct token ids in 0..{self.vocab_size - 1}")
        if not all(math.isfinite(x) for x in self.numeric_values):
            raise ValueError("invalid TransformerConfig.numeric_values: must be finite numbers")
        g = self.grid_side
        if not isinstance(g, int) or isinstance(g, bool) or g < 0:
            raise ValueError(f"invalid TransformerConfig.grid_side={g!r}: must be a non-negative integer")
        if g == 0 and (self.grid_tokens or self.grid_positions):
            raise ValueError("invalid TransformerConfig: grid_tokens/grid_positions given without grid_side")
        if g:
            for f, n in (("grid_tokens", self.vocab_size), ("grid_positions", self.context)):
                v = getattr(self, f)
                if len(v) != n:
                    raise ValueError(f"invalid TransformerConfig.{f}: {len(v)} entries, expected {n}")
                if any(x < -1 or x >= g * g for x in v):
                    raise ValueError(f"invalid TransformerConfig.{f}: cells must be -1 or in 0..{g * g - 1}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def compute_dtype(self):
        """The jnp dtype of the matrix products (`dtype`)."""
        return jnp.dtype(self.dtype)


DTYPES = ("float32", "bfloat16")
"""The compute precisions a `Transformer` offers (`TransformerConfig.dtype`)."""


def activation_names(config: TransformerConfig) -> tuple[str, ...]:
    """Every activation name of a model with this config, in the order they are computed."""
    names = ["hook_embed", "hook_pos_embed"] + (["hook_grid_embed"] if config.grid_side else [])
    for i in range(config.n_layers):
        b = f"blocks.{i}"
        names += [
            f"{b}.hook_resid_pre",
            f"{b}.ln1.hook_normalized",
            f"{b}.attn.hook_q",
            f"{b}.attn.hook_k",
            f"{b}.attn.hook_v",
            f"{b}.attn.hook_attn_scores",
            f"{b}.attn.hook_pattern",
            f"{b}.attn.hook_z",
            f"{b}.hook_attn_out",
            f"{b}.hook_resid_mid",
            f"{b}.ln2.hook_normalized",
            f"{b}.mlp.hook_pre",
            f"{b}.mlp.hook_post",
            f"{b}.hook_mlp_out",
            f"{b}.hook_resid_post",
        ]
    return tuple(names + ["ln_final.hook_normalized"])


@struct.dataclass
class Hooks:
    """What one call records and changes: a pytree, so it passes through `jit` and `vmap`.
    `names` is static (a tuple of names, or "all"); `add` and `replace` map names to arrays
    broadcastable to the activation (traced)."""

    names: tuple[str, ...] | str = struct.field(pytree_node=False, default=())
    add: dict | None = None
    replace: dict | None = None


@struct.dataclass
class KVCache:
    """Keys and values of the positions fed so far: `k`, `v`, one (B, H, context, Dh) array per
    layer; `index` () int32, the number of positions filled.

    Per-layer arrays rather than one stacked (n_layers, ...) array: a decoding step then updates
    each layer's cache in place (`dynamic_update_slice` inside the caller's `scan`), where
    slicing and re-stacking a single array copied the whole cache every step (4-6x slower
    acting at 256 episodes, and worse with more)."""

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
    index: jax.Array

    @classmethod
    def empty(cls, config: TransformerConfig, batch: int, dtype=jnp.float32) -> "KVCache":
        shape = (batch, config.n_heads, config.context, config.d_head)
        zeros = tuple(jnp.zeros(shape, dtype) for _ in range(config.n_layers))
        return cls(zeros, tuple(jnp.zeros(shape, dtype) for _ in range(config.n_layers)), jnp.zeros((), jnp.int32))


class _Recorder:
    """Applies a call's interventions and collects the cache (lives for one call only)."""

    def __init__(self, hooks: Hooks | None):
        self.hooks = hooks or Hooks()
        self.cache: dict[str, jax.Array] = {}

    def touches(self, name: str) -> bool:
        """Whether this call records or changes `name` (known at trace time)."""
        h = self.hooks
        return h.names == "all" or name in h.names or name in (h.replace or {}) or name in (h.add or {})

    def __call__(self, name: str, x: jax.Array) -> jax.Array:
        h = self.hooks
        if h.replace and name in h.replace:
            x = jnp.broadcast_to(h.replace[name], x.shape).astype(x.dtype)
        if h.add and name in h.add:
            x = x + h.add[name]
        if h.names == "all" or name in h.names:
            self.cache[name] = x.astype(jnp.float32) if x.dtype == jnp.bfloat16 else x  # lenses read float32
        return x


ATTN_CHUNKS = 4
ATTN_CHUNK_MIN = 32


def _myopic_scores(q, k, lo: int = 0):
    """`q · kᵀ` (B, H, Tq, Tk) for queries at positions lo.. against keys 0..Tk-1, in which each
    query's gradient reaches only its own position's key: the keys of other positions enter as
    constants (`stop_gradient`), and a zero-valued term `q·k − q·sg(k)` on the diagonal carries
    the gradient of the query's own key. The values are those of `q · kᵀ` exactly (the term is
    x − x = 0 and the products are the same)."""
    s = jnp.einsum("bqhd,bkhd->bhqk", q, jax.lax.stop_gradient(k))
    own = k[:, lo : lo + q.shape[1]]  # (B, Tq, H, Dh): each query's own key
    diag = jnp.einsum("bqhd,bqhd->bhq", q, own) - jnp.einsum("bqhd,bqhd->bhq", q, jax.lax.stop_gradient(own))
    eye = jnp.arange(k.shape[1])[None, :] == jnp.arange(lo, lo + q.shape[1])[:, None]  # (Tq, Tk)
    return s + jnp.where(eye, diag[..., None], jnp.zeros((), s.dtype))


def _myopic_mix(p, v, lo: int = 0):
    """`p · v` (B, Tq, H, Dh) with each query's gradient reaching only its own position's value
    (the same construction as `_myopic_scores`)."""
    z = jnp.einsum("bhqk,bkhd->bqhd", p, jax.lax.stop_gradient(v))
    own = v[:, lo : lo + p.shape[2]]  # (B, Tq, H, Dh)
    p_own = jnp.diagonal(p[..., lo : lo + p.shape[2]], axis1=-2, axis2=-1)  # (B, H, Tq)
    return z + jnp.swapaxes(p_own, 1, 2)[..., None] * (own - jax.lax.stop_gradient(own))


def _scores(q, k, myopic: bool, lo: int = 0):
    return _myopic_scores(q, k, lo) if myopic else jnp.einsum("bqhd,bkhd->bhqk", q, k)


def _mix(p, v, myopic: bool, lo: int = 0):
    return _myopic_mix(p, v, lo) if myopic else jnp.einsum("bhqk,bkhd->bqhd", p, v)


def _chunked_attention(q, k, v, scale, n: int, myopic: bool = False):
    """Causal attention computed in `n` query blocks, each against the keys up to its end only:
    the same result as the full masked square, with about (n+1)/2n of its work and memory (on a
    2-core CPU, T=447: 0.55x the time of the full square, forward and backward)."""
    t = q.shape[1]
    size = -(-t // n)
    out = []
    for lo in range(0, t, size):
        hi = min(lo + size, t)
        s = (_scores(q[:, lo:hi], k[:, :hi], myopic, lo) / scale).astype(jnp.float32)
        mask = jnp.arange(hi)[None, :] <= jnp.arange(lo, hi)[:, None]
        p = jax.nn.softmax(jnp.where(mask, s, jnp.finfo(s.dtype).min), axis=-1)
        out.append(_mix(p.astype(v.dtype), v[:, :hi], myopic, lo))
    return jnp.concatenate(out, axis=1)


class _Attention(nn.Module):
    config: TransformerConfig
    prefix: str

    @nn.compact
    def __call__(self, x, hook, kv=None, myopic: bool = False):
        """`kv`: None, or `(k_cache, v_cache, index)` of this layer; returns `(out, (k_cache, v_cache))`.
        `myopic`: each position's gradient reaches only its own key and value (`Transformer`)."""
        c = self.config
        b, t, _ = x.shape
        qkv = nn.Dense(3 * c.d_model, dtype=c.compute_dtype, name="qkv")(x).reshape(b, t, 3, c.n_heads, c.d_head)  # (B, T, 3, H, Dh)
        q = hook(f"{self.prefix}.hook_q", qkv[:, :, 0])
        k = hook(f"{self.prefix}.hook_k", qkv[:, :, 1])
        v = hook(f"{self.prefix}.hook_v", qkv[:, :, 2])
        scale = jnp.sqrt(c.d_head).astype(qkv.dtype)
        names = (f"{self.prefix}.hook_attn_scores", f"{self.prefix}.hook_pattern")
        if kv is None and t >= ATTN_CHUNK_MIN * ATTN_CHUNKS and not any(hook.touches(n) for n in names):
            z = hook(f"{self.prefix}.hook_z", _chunked_attention(q, k, v, scale, ATTN_CHUNKS, myopic))
            return nn.Dense(c.d_model, dtype=c.compute_dtype, name="out")(z.reshape(b, t, c.d_model)), None
        if kv is None:
            causal = jnp.tril(jnp.ones((t, t), bool))
            scores = _scores(q, k, myopic) / scale  # (B, H, T, T)
            new = None
        else:
            # The cache is kept head-major, (B, H, context, Dh): the step's few new keys are
            # transposed, never the whole cache, and both products are plain batched matmuls.
            k_cache, v_cache, index = kv
            k = jax.lax.dynamic_update_slice(k_cache, jnp.swapaxes(k, 1, 2).astype(k_cache.dtype), (0, 0, index, 0))
            v = jax.lax.dynamic_update_slice(v_cache, jnp.swapaxes(v, 1, 2).astype(v_cache.dtype), (0, 0, index, 0))
            causal = jnp.arange(c.context)[None, :] <= index + jnp.arange(t)[:, None]  # (T, context)
            scores = jnp.einsum("bhqd,bhkd->bhqk", jnp.swapaxes(q, 1, 2), k) / scale  # (B, H, T, context)
            new = (k, v)
        scores = scores.astype(jnp.float32)  # the softmax runs in float32 whatever the compute precision
        scores = hook(f"{self.prefix}.hook_attn_scores", jnp.where(causal, scores, jnp.finfo(scores.dtype).min))
        pattern = hook(f"{self.prefix}.hook_pattern", jax.nn.softmax(scores, axis=-1))
        mix = pattern.astype(c.compute_dtype)
        if kv is None:
            z = _mix(mix, v, myopic)
        else:
            z = jnp.swapaxes(jnp.einsum("bhqk,bhkd->bhqd", mix, v.astype(c.compute_dtype)), 1, 2)
        z = hook(f"{self.prefix}.hook_z", z)  # (B, T, H, Dh)
        return nn.Dense(c.d_model, dtype=c.compute_dtype, name="out")(z.reshape(b, t, c.d_model)), new


class _Block(nn.Module):
    config: TransformerConfig
    index: int
    prefix: str = ""
    """Its activations' name prefix (default `blocks.{index}`)."""

    @nn.compact
    def __call__(self, x, hook, kv=None, myopic: bool = False):
        p = self.prefix or f"blocks.{self.index}"
        x = hook(f"{p}.hook_resid_pre", x)
        h = hook(f"{p}.ln1.hook_normalized", nn.LayerNorm(dtype=self.config.compute_dtype, name="ln1")(x))
        attn, new_kv = _Attention(self.config, f"{p}.attn", name="attn")(h, hook, kv, myopic)
        attn = hook(f"{p}.hook_attn_out", attn)
        x = hook(f"{p}.hook_resid_mid", x + attn)
        h = hook(f"{p}.ln2.hook_normalized", nn.LayerNorm(dtype=self.config.compute_dtype, name="ln2")(x))
        pre = hook(f"{p}.mlp.hook_pre", nn.Dense(self.config.d_mlp, dtype=self.config.compute_dtype, name="mlp_in")(h))
        post = hook(f"{p}.mlp.hook_post", nn.gelu(pre))
        mlp = hook(f"{p}.hook_mlp_out", nn.Dense(self.config.d_model, dtype=self.config.compute_dtype, name="mlp_out")(post))
        return hook(f"{p}.hook_resid_post", x + mlp), new_kv


class Transformer(nn.Module):
    """`apply(params, tokens (B, T) int, hooks=None) -> (logits (B, T, V), cache)`;
    with `kv=KVCache`: `-> (logits, cache, kv)` (incremental decoding).

    `myopic=True` (training only) is myopic descent (Wu, Morris and Levine 2024): the loss at a
    position cannot shape the computation that earlier positions leave for later ones. In every
    block a query's gradient reaches only its own position's key and value; the others enter its
    attention as constants. The forward pass is the ordinary one, value for value; only the
    gradients change.

    `future=True` (with `config.future_heads` = n > 1) returns the logits of every head, (B, T, n,
    V): `[..., k - 1, :]` predicts the token k positions ahead. Otherwise only head 1's, (B, T,
    V), as any model; the further heads are then not computed (acting and dreaming use head 1).
    Their activations are named `heads.{k}.…` like a block's (`blocks.{i}.…`)."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, tokens: jax.Array, hooks: Hooks | None = None, kv: KVCache | None = None, myopic: bool = False,
                 future: bool = False):  # fmt: skip
        c = self.config
        if myopic and kv is not None:
            raise ValueError("myopic=True is a training option: it cannot be combined with a key/value cache (incremental decoding)")
        if future and kv is not None:
            raise ValueError("future=True returns every head's logits for training: it cannot be combined with a key/value cache")
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be (batch, time), got shape {tokens.shape}")
        if tokens.shape[1] > c.context:
            raise ValueError(f"sequence of {tokens.shape[1]} tokens is longer than the context {c.context}")
        hook = _Recorder(hooks)
        # Initialisation as GPT-2: N(0, 0.02) embeddings (nanoGPT's choice).
        embed = nn.Embed(c.vocab_size, c.d_model, embedding_init=nn.initializers.normal(0.02), name="embed")
        pos = self.param("pos_embed", nn.initializers.normal(0.02), (c.context, c.d_model))
        x = embed(tokens)  # (B, T, D)
        if c.numeric_ids:
            x = self._numeric(tokens, x)
        x = hook("hook_embed", x)
        t = tokens.shape[1]
        start = jnp.int32(0) if kv is None else kv.index
        p = jax.lax.dynamic_slice_in_dim(pos, start, t)
        if c.grid_side:  # the cell each position describes (-1: none); such a position is placed by row and column only
            pos_cell = jax.lax.dynamic_slice_in_dim(jnp.asarray(c.grid_positions, jnp.int32), start, t)  # (T,)
            p = jnp.where((pos_cell >= 0)[:, None], 0.0, p)
        p = hook("hook_pos_embed", jnp.broadcast_to(p, x.shape))
        x = x + p
        if c.grid_side:
            x = x + hook("hook_grid_embed", self._grid(tokens, pos_cell))
        ks, vs = [], []
        trunk = x
        for i in range(c.n_layers):
            layer_kv = None if kv is None else (kv.k[i], kv.v[i], kv.index)
            trunk = x  # the residual stream before the last block: what every head reads
            x, new = _Block(c, i, name=f"block_{i}")(x, hook, layer_kv, myopic)
            if new is not None:
                ks.append(new[0])
                vs.append(new[1])
        ln_final = nn.LayerNorm(dtype=c.compute_dtype, name="ln_final")
        unembed = nn.Dense(c.vocab_size, dtype=c.compute_dtype, name="unembed")
        x = hook("ln_final.hook_normalized", ln_final(x))
        logits = unembed(x).astype(jnp.float32)  # (B, T, V)
        if c.future_heads > 1 and (future or self.is_initializing()):
            heads = [logits]
            for k in range(2, c.future_heads + 1):
                h, _ = _Block(c, c.n_layers - 1, prefix=f"heads.{k}", name=f"head_{k}")(trunk, hook, None, myopic)
                heads.append(unembed(hook(f"heads.{k}.ln_final.hook_normalized", ln_final(h))).astype(jnp.float32))
            if future:
                return jnp.stack(heads, axis=2), hook.cache  # (B, T, n, V)
        if kv is None:
            return logits, hook.cache
        return logits, hook.cache, KVCache(tuple(ks), tuple(vs), kv.index + t)

    def _numeric(self, tokens: jax.Array, x: jax.Array) -> jax.Array:
        """Numeric tokens' embedding: `base + value * slope` (two learned vectors) in place of
        their own rows, as the original Decision Transformer embeds a return with a linear layer."""
        c = self.config
        base = self.param("numeric_base", nn.initializers.normal(0.02), (c.d_model,))
        slope = self.param("numeric_slope", nn.initializers.normal(0.02), (c.d_model,))
        ids = list(c.numeric_ids)
        value, is_num = np.zeros(c.vocab_size, np.float32), np.zeros(c.vocab_size, bool)  # static tables
        value[ids], is_num[ids] = c.numeric_values, True
        return jnp.where(jnp.asarray(is_num)[tokens][..., None], base + jnp.asarray(value)[tokens][..., None] * slope, x)

    def _grid(self, tokens: jax.Array, pos_cell: jax.Array) -> jax.Array:
        """(B, T, D): row[r] + col[c] for each token naming cell (r, c) by its id or by its
        position (`pos_cell`, (T,): the cell each position describes, or -1)."""
        c = self.config
        g = c.grid_side
        row = self.param("grid_row", nn.initializers.normal(0.02), (g, c.d_model))
        col = self.param("grid_col", nn.initializers.normal(0.02), (g, c.d_model))

        def vec(cell: jax.Array) -> jax.Array:
            v = row[jnp.maximum(cell, 0) // g] + col[jnp.maximum(cell, 0) % g]
            return jnp.where((cell >= 0)[..., None], v, 0.0)

        by_token = jnp.asarray(c.grid_tokens, jnp.int32)[tokens]  # (B, T)
        return vec(by_token) + vec(pos_cell)[None]
