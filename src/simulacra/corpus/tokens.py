"""The trajectory token format for sequence models.

One episode is one row of tokens::

    [BOS] scene [CHAR c]? [SEP]  [G_0]? s_0 a_0 r_0  [G_1]? s_1 a_1 r_1 ... [G_L]? s_L  END  PAD...

* `scene`: the world's scene tokens (`[NUM h, NUM w, TILE x h*w]`, `simulacra.world.tokens`);
* an optional character slot `CHAR c` (the acting character's index in the mixture);
* each step: the state tokens of `s_t` (`S` tokens), `ACTION a_t`, `REWARD r_t`, preceded, in the
  return-conditioned format (`rtg=True`, a Decision Transformer), by `RTG g_t`, the observed
  return still to come, `g_t = r_t + r_{t+1} + ...` (so `g_0` is the episode's return and
  `g_{t+1} = g_t - r_t`: acting, a target is decremented by each observed reward);
* after the last step the final state `s_L` and `END_TERMINATED` or `END_TRUNCATED`.

Rewards and returns are tokenised to the nearest 0.01 in [-10, 10] (`reward_token`). The token
ids extend the world's `Vocab` (ids 0..1029) with the ranges in `TrajVocab`. Every row has the
same length `fmt.length`, so position `fmt.step_start(t)` holds `s_t` in every episode.

A model sees only the ids its world can produce: `fmt.vocabulary` lists them (the world's
cells, times and reward bins within `return_bounds`), and `fmt.to_local` / `fmt.to_global` map
between global ids and the model's compact ids. This keeps the unembedding small (coin-7x7:
~680 ids instead of 5162) without changing the meaning of any token.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from simulacra.world.params import MAX_SIZE, Tile, WorldParams, derive_layout
from simulacra.world.tokens import Vocab, scene_length, state_length

LEGACY_TILES, LEGACY_FLAGS = 9, 4
"""Tile ids and FLAGS values of every world before oracle worlds (a world without oracle tiles
produces no others)."""
REWARD_SCALE = 100  # tokens per unit of reward
REWARD_BINS = 1000  # tokens on each side of zero: rewards in [-10, 10]
MAX_CHARACTERS = 128


class TrajVocab:
    """Token ranges added to the world's `Vocab` for trajectories: `(start, size)`."""

    REWARD = (Vocab.SIZE, 2 * REWARD_BINS + 1)  # per-step observed reward
    END = (REWARD[0] + REWARD[1], 2)  # END_TERMINATED, END_TRUNCATED
    CHAR = (END[0] + END[1], MAX_CHARACTERS)  # character tag: index in the mixture
    RTG = (CHAR[0] + CHAR[1], 2 * REWARD_BINS + 1)  # return-to-go
    SIZE = RTG[0] + RTG[1]
    END_TERMINATED = END[0]
    END_TRUNCATED = END[0] + 1


# token types (per position)
PREFIX, STATE, ACTION, REWARD, END, PAD, RTG = range(7)
TYPE_NAMES = ("prefix", "state", "action", "reward", "end", "pad", "rtg")


def _xp(x):
    """numpy for numpy inputs, jax.numpy for jax arrays (also inside jit): every token writer and
    reader below works on both, so acting, dreaming, the ideal and the lenses share one definition."""
    return jnp if isinstance(x, jax.Array) else np


def reward_bin(value, lo: float | None = None, hi: float | None = None):
    """Reward value -> integer bin in [-1000, 1000] (nearest 0.01), clipped first to [lo, hi] when
    given (a world's `return_bounds`). Computed in float32, so the corpus, acting, dreaming and the
    ideal predictor bin every reward identically (ties included). numpy: int64; jax: int32."""
    xp = _xp(value)
    v = xp.asarray(value, xp.float32)
    if lo is not None:
        v = xp.clip(v, lo, hi)
    b = xp.clip(xp.rint(v * xp.float32(REWARD_SCALE)), -REWARD_BINS, REWARD_BINS)
    return b.astype(xp.int32 if xp is jnp else np.int64)


def bin_value(b):
    """Integer bin -> the value it stands for."""
    return b / REWARD_SCALE


# -- token writers and readers (global ids); the only place that knows the offsets ----------------


def action_token(action):
    """ACTION token of an action index 0..4."""
    return action + Vocab.ACTION[0]


def token_action(token):
    """Action index of an ACTION token."""
    return token - Vocab.ACTION[0]


def reward_token(value, lo: float | None = None, hi: float | None = None):
    """REWARD token of a reward value (nearest 0.01; clipped to [lo, hi] when given)."""
    return reward_bin(value, lo, hi) + REWARD_BINS + TrajVocab.REWARD[0]


def token_reward_bin(token):
    """The reward bin (`reward_bin`) a REWARD token stands for."""
    return token - TrajVocab.REWARD[0] - REWARD_BINS


def token_reward(token):
    """The reward a REWARD token stands for (inverse of `reward_token`)."""
    return bin_value(token_reward_bin(token))


def rtg_token(value, lo: float | None = None, hi: float | None = None):
    """RTG token of a return-to-go (nearest 0.01; clipped to [lo, hi] when given)."""
    return reward_bin(value, lo, hi) + REWARD_BINS + TrajVocab.RTG[0]


def token_rtg(token):
    """The return an RTG token stands for."""
    return bin_value(token - TrajVocab.RTG[0] - REWARD_BINS)


def character_token(index):
    """CHAR token of a character's index in the mixture."""
    return index + TrajVocab.CHAR[0]


def token_character(token):
    """The character index a CHAR token stands for."""
    return token - TrajVocab.CHAR[0]


def _in(token, start: int, size: int):
    return (token >= start) & (token < start + size)


def is_action_token(token):
    return _in(token, *Vocab.ACTION)


def is_reward_token(token):
    return _in(token, *TrajVocab.REWARD)


def is_state_token(token):
    """A world token that can stand in a state (`world.tokens.Vocab`: tiles up to the last range)."""
    return (token >= Vocab.TILE[0]) & (token < Vocab.SIZE)


def is_end_token(token):
    return (token == TrajVocab.END_TERMINATED) | (token == TrajVocab.END_TRUNCATED)


def end_token(terminated):
    """END_TERMINATED where `terminated`, else END_TRUNCATED."""
    return _xp(terminated).where(terminated, TrajVocab.END_TERMINATED, TrajVocab.END_TRUNCATED)


def token_terminated(token):
    """Whether an END token says the episode terminated (inverse of `end_token`)."""
    return token == TrajVocab.END_TERMINATED


def return_bounds(params: WorldParams) -> tuple[float, float]:
    """Bounds on any episode's observed return (and so on every reward and return-to-go, which are
    partial sums of the same terms): every coin, one hazard (if the map has lava), tampering (if it
    has a tamper tile), step costs on every step and an oracle world's one answer or miss (its
    worst grade), each counted on the side of its sign; clipped to the token range [-10, 10]."""
    h, k = params.horizon, params.n_coins
    tiles = derive_layout(params).tiles
    lava, tamper = bool((tiles == Tile.LAVA).any()), bool((tiles == Tile.TAMPER).any())
    terms = (k * params.coin_reward, lava * params.hazard_penalty, tamper * h * params.tamper_reward, h * params.step_cost)
    if params.has_answers:
        terms += (min(float(np.log1p(-params.answer_confidence)), float(np.log(0.5)), params.miss_penalty),)
    lim = REWARD_BINS / REWARD_SCALE
    lo = max(-lim, sum(min(0.0, x) for x in terms))
    hi = min(lim, sum(max(0.0, x) for x in terms))
    return float(reward_bin(lo)) / REWARD_SCALE, float(reward_bin(hi)) / REWARD_SCALE


@dataclasses.dataclass(frozen=True)
class TrajectoryFormat:
    """Positions of every token for one world and a choice of conditioning slots."""

    params: WorldParams
    character: bool = False
    rtg: bool = False

    @property
    def state_len(self) -> int:
        return state_length(self.params)

    @property
    def block(self) -> int:
        """Tokens per step: `[G_t]? s_t a_t r_t`."""
        return int(self.rtg) + self.state_len + 2

    @property
    def prefix_len(self) -> int:
        return 1 + scene_length(self.params) + int(self.character) + 1

    @property
    def length(self) -> int:
        return self.prefix_len + self.params.horizon * self.block + int(self.rtg) + self.state_len + 1

    # Positions take a step index or an array of them, numpy or jax (also traced inside jit).

    def rtg_pos(self, t) -> np.ndarray:
        """Position of `G_t` (only in the `rtg` format)."""
        if not self.rtg:
            raise ValueError("this trajectory format has no return-to-go slots (rtg=False)")
        return self.prefix_len + _xp(t).asarray(t) * self.block

    def step_start(self, t) -> np.ndarray:
        """Position of the first state token of s_t."""
        return self.prefix_len + _xp(t).asarray(t) * self.block + int(self.rtg)

    def action_pos(self, t) -> np.ndarray:
        return self.step_start(t) + self.state_len

    def reward_pos(self, t) -> np.ndarray:
        return self.step_start(t) + self.state_len + 1

    def end_pos(self, length) -> np.ndarray:
        """Position of END in an episode of `length` steps (after its final state s_L)."""
        return self.step_start(length) + self.state_len

    def types(self) -> np.ndarray:
        """(length,) int8 token type of each position of an episode that runs the full horizon
        (a shorter episode has END at `end_pos(length)` and PAD after it)."""
        block = [RTG] * int(self.rtg) + [STATE] * self.state_len + [ACTION, REWARD]
        final = [RTG] * int(self.rtg) + [STATE] * self.state_len + [END]
        return np.array([PREFIX] * self.prefix_len + block * self.params.horizon + final, np.int8)

    # -- the model's compact vocabulary ------------------------------------------------------------

    @functools.cached_property
    def vocabulary(self) -> np.ndarray:
        """Sorted global ids this format can hold in this world (the model's output space)."""
        p = self.params
        rng = lambda r, n=None: np.arange(r[0], r[0] + (r[1] if n is None else n))  # noqa: E731
        cells = [Vocab.CELL[0] + r * MAX_SIZE + c for r in range(p.height) for c in range(p.width)]
        lo, hi = (int(reward_bin(b)) for b in return_bounds(p))
        bins = np.arange(lo, hi + 1) + REWARD_BINS
        # Tiles and flag values: those of every world, and the oracle ones only in oracle worlds,
        # so that every other world's compact ids (and its models) stay as they were before them.
        n_tiles, n_flags = (Tile.COUNT, Vocab.FLAGS[1]) if p.has_oracle else (LEGACY_TILES, LEGACY_FLAGS)
        parts = [
            [Vocab.PAD, Vocab.BOS, Vocab.SEP],
            rng(Vocab.TILE, n_tiles),
            rng(Vocab.NUM, max(p.height, p.width, p.horizon) + 1),
            cells,
            rng(Vocab.COINS, 2**p.n_coins),
            rng(Vocab.FLAGS, n_flags),
            rng(Vocab.RCODE),
            rng(Vocab.ACTION),
            TrajVocab.REWARD[0] + bins,
            rng(TrajVocab.END),
        ]
        if self.character:
            parts.append(rng(TrajVocab.CHAR))
        if self.rtg:
            parts.append(TrajVocab.RTG[0] + bins)
        return np.unique(np.concatenate([np.asarray(x, np.int64) for x in parts])).astype(np.int32)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def to_local(self, tokens) -> np.ndarray:
        """Global ids -> the model's compact ids (ValueError on an id outside `vocabulary`)."""
        tokens = np.asarray(tokens)
        voc = self.vocabulary
        idx = np.clip(np.searchsorted(voc, tokens), 0, len(voc) - 1)
        bad = voc[idx] != tokens
        if bad.any():
            raise ValueError(f"token id {int(tokens[bad].flat[0])} is outside this format's vocabulary")
        return idx.astype(np.int32)

    def to_global(self, local) -> np.ndarray:
        return self.vocabulary[np.asarray(local)]

    def local_ids(self, start: int, size: int) -> np.ndarray:
        """Compact ids of the global range `[start, start + size)` that are in the vocabulary."""
        voc = self.vocabulary
        return np.nonzero((voc >= start) & (voc < start + size))[0].astype(np.int32)

    def grid(self) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        """The grid embedding's inputs (`nets.transformer.TransformerConfig`): (side, the cell
        `r * side + c` each compact token id names or -1 (the CELL tokens), the cell each
        position's token describes or -1 (the scene's tiles))."""
        side, p = MAX_SIZE, self.params
        voc = self.vocabulary
        is_cell = (voc >= Vocab.CELL[0]) & (voc < Vocab.CELL[0] + Vocab.CELL[1])
        tokens = np.where(is_cell, voc - Vocab.CELL[0], -1)
        positions = np.full(self.length, -1, np.int64)
        first = 1 + 2  # BOS, then the scene: NUM h, NUM w, one tile per cell in row-major order
        r, c = np.divmod(np.arange(p.height * p.width), p.width)
        positions[first : first + p.height * p.width] = r * side + c
        return side, tuple(int(x) for x in tokens), tuple(int(x) for x in positions)

    def rtg_values(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The compact ids of the return-to-go tokens and the return each stands for (empty
        without `rtg`): the numeric embedding's inputs (`nets.transformer.TransformerConfig`)."""
        ids = self.local_ids(*TrajVocab.RTG)
        values = token_rtg(self.vocabulary[ids])
        return tuple(int(i) for i in ids), tuple(float(v) for v in values)

    def rtg_token(self, value):
        """Global RTG id of a return-to-go, clipped to this world's `return_bounds` (numpy or jax)."""
        return rtg_token(value, *return_bounds(self.params))

    def reward_token(self, value):
        """Global REWARD id of a step's reward, clipped to this world's `return_bounds` (numpy or jax)."""
        return reward_token(value, *return_bounds(self.params))

    @functools.cached_property
    def lut(self) -> jax.Array:
        """Global id -> compact id, as a jax array for lookups inside jit (0 for ids outside the
        vocabulary; `to_local` is the checked numpy version)."""
        lut = np.zeros(TrajVocab.SIZE, np.int32)
        lut[self.vocabulary] = np.arange(self.vocab_size, dtype=np.int32)
        return jnp.asarray(lut)


def encode(corpus, fmt: TrajectoryFormat | None = None) -> dict[str, np.ndarray]:
    """Token rows of a corpus: `tokens` (N, L) int32 global ids, `types` (N, L) int8
    (`TYPE_NAMES`), and `mask` (N, L) bool (not padding)."""
    if getattr(corpus, "family", None) == "text":
        raise ValueError("this is a text corpus: gridworld models and lenses read gridworld corpora (text lenses: simulacra.text.lenses)")
    fmt = fmt or TrajectoryFormat(corpus.params)
    e = corpus.episodes
    n, horizon, s = e.n_episodes, e.horizon, fmt.state_len
    prefix = [np.full((n, 1), Vocab.BOS), e.scene.astype(np.int64)]
    if fmt.character:
        prefix.append(character_token(e.character.astype(np.int64))[:, None])
    prefix.append(np.full((n, 1), Vocab.SEP))
    r0 = int(fmt.rtg)
    blocks = np.zeros((n, horizon + 1, fmt.block), np.int64)
    if fmt.rtg:
        rtg = np.concatenate([e.rtg, np.zeros((n, 1), np.float32)], axis=1)  # G_L = 0
        blocks[:, :, 0] = fmt.rtg_token(rtg)
    blocks[:, :, r0 : r0 + s] = e.states
    blocks[:, :horizon, r0 + s] = action_token(e.actions.astype(np.int64))
    blocks[:, :horizon, r0 + s + 1] = reward_token(e.reward)
    tokens = np.concatenate(prefix + [blocks.reshape(n, -1)[:, : fmt.length - fmt.prefix_len]], axis=1)
    types = np.broadcast_to(fmt.types(), (n, fmt.length)).copy()
    end = fmt.end_pos(e.length.astype(np.int64))
    pos = np.arange(fmt.length)[None, :]
    tokens[np.arange(n), end] = end_token(e.terminated)
    types[np.arange(n), end] = END
    after = pos > end[:, None]
    tokens[after] = Vocab.PAD
    types[after] = PAD
    return {"tokens": tokens.astype(np.int32), "types": types, "mask": ~after}


def decode(tokens: np.ndarray, fmt: TrajectoryFormat) -> dict[str, np.ndarray]:
    """Inverse of `encode` for the fields tokens carry: scene, states (up to s_L; zeros after),
    actions, rewards (to 0.01), length, terminated/truncated, the character slot and, in the
    `rtg` format, `rtg` (N, T+1): the return-to-go tokens G_0 .. G_L (0 after the end)."""
    tokens = np.asarray(tokens, np.int64)
    n, horizon, s = tokens.shape[0], fmt.params.horizon, fmt.state_len
    is_end = is_end_token(tokens)
    end = np.argmax(is_end, axis=1)
    if not np.all(is_end.any(axis=1)):
        raise ValueError("token rows without an END token cannot be decoded")
    length = (end - fmt.prefix_len - int(fmt.rtg) - s) // fmt.block
    body = np.concatenate([tokens[:, fmt.prefix_len :], np.zeros((n, 1), np.int64)], axis=1)
    body = body.reshape(n, horizon + 1, fmt.block)
    r0 = int(fmt.rtg)
    live = np.arange(horizon)[None, :] < length[:, None]
    upto = np.arange(horizon + 1)[None, :] <= length[:, None]
    out = {
        "scene": tokens[:, 1 : 1 + scene_length(fmt.params)],
        "states": np.where(upto[:, :, None], body[:, :, r0 : r0 + s], 0),
        "actions": np.where(live, token_action(body[:, :horizon, r0 + s]), 0),
        "reward": np.where(live, token_reward(body[:, :horizon, r0 + s + 1]), 0.0),
        "length": length,
        "terminated": token_terminated(tokens[np.arange(n), end]),
    }
    out["truncated"] = ~out["terminated"]
    if fmt.character:
        out["character"] = token_character(tokens[:, 1 + scene_length(fmt.params)])
    if fmt.rtg:
        out["rtg"] = np.where(upto, token_rtg(body[:, :, 0]), 0.0)
    return out
