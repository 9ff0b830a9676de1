"""The trajectory token format for sequence models.

One episode is one row of tokens::

    [BOS] scene [CHAR c]? [RTG R]? [SEP]  s_0 a_0 r_0  s_1 a_1 r_1 ... s_{L-1} a_{L-1} r_{L-1}  s_L  END  PAD...

* `scene`: the world's scene tokens (`[NUM h, NUM w, TILE x h*w]`, `simulacra.world.tokens`);
* optional conditioning slots: `CHAR c` (the acting character's index in the mixture) and
  `RTG R` (the episode's observed return, the Decision Transformer's target);
* each step: the state tokens of `s_t` (`S` tokens), `ACTION a_t`, `REWARD r_t`;
* after the last step the final state `s_L` and `END_TERMINATED` or `END_TRUNCATED`.

Rewards and returns are tokenised to the nearest 0.01 in [-10, 10] (`reward_token`). The token
ids extend the world's `Vocab` (ids 0..1029) with the ranges in `TrajVocab`. Every row has the
same length `fmt.length` (`T*(S+2) + S + 1` plus the prefix), so position `fmt.step_start(t)`
holds `s_t` in every episode.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from simulacra.world.params import WorldParams
from simulacra.world.tokens import Vocab, scene_length, state_length

REWARD_SCALE = 100  # tokens per unit of reward
REWARD_BINS = 1000  # tokens on each side of zero: rewards in [-10, 10]


class TrajVocab:
    """Token ranges added to the world's `Vocab` for trajectories: `(start, size)`."""

    REWARD = (Vocab.SIZE, 2 * REWARD_BINS + 1)  # per-step observed reward
    END = (REWARD[0] + REWARD[1], 2)  # END_TERMINATED, END_TRUNCATED
    CHAR = (END[0] + END[1], 128)  # character tag: index in the mixture
    RTG = (CHAR[0] + CHAR[1], 2 * REWARD_BINS + 1)  # return-to-go target
    SIZE = RTG[0] + RTG[1]
    END_TERMINATED = END[0]
    END_TRUNCATED = END[0] + 1


# token types (per position)
PREFIX, STATE, ACTION, REWARD, END, PAD = range(6)
TYPE_NAMES = ("prefix", "state", "action", "reward", "end", "pad")


def reward_bin(value) -> np.ndarray:
    """Reward value -> integer bin in [-1000, 1000] (nearest 0.01, clipped). Computed in float32,
    exactly as the ideal predictor bins the law's rewards, so both agree on every tie."""
    scaled = np.asarray(value, np.float32) * np.float32(REWARD_SCALE)
    return np.clip(np.rint(scaled), -REWARD_BINS, REWARD_BINS).astype(np.int64)


def reward_token(value) -> np.ndarray:
    return reward_bin(value) + REWARD_BINS + TrajVocab.REWARD[0]


def token_reward(token) -> np.ndarray:
    """Inverse of `reward_token` (the bin's value)."""
    return (np.asarray(token) - TrajVocab.REWARD[0] - REWARD_BINS) / REWARD_SCALE


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
        return self.state_len + 2

    @property
    def prefix_len(self) -> int:
        return 1 + scene_length(self.params) + int(self.character) + int(self.rtg) + 1

    @property
    def length(self) -> int:
        return self.prefix_len + self.params.horizon * self.block + self.state_len + 1

    def step_start(self, t) -> np.ndarray:
        """Position of the first state token of s_t."""
        return self.prefix_len + np.asarray(t) * self.block

    def action_pos(self, t) -> np.ndarray:
        return self.step_start(t) + self.state_len

    def reward_pos(self, t) -> np.ndarray:
        return self.step_start(t) + self.state_len + 1

    def end_pos(self, length) -> np.ndarray:
        return self.step_start(length) + self.state_len


def encode(corpus, fmt: TrajectoryFormat | None = None) -> dict[str, np.ndarray]:
    """Token rows of a corpus: `tokens` (N, L) int32, `types` (N, L) int8 (`TYPE_NAMES`), and
    `mask` (N, L) bool (not padding)."""
    fmt = fmt or TrajectoryFormat(corpus.params)
    a = corpus.arrays
    n, horizon, s = corpus.n_episodes, corpus.horizon, fmt.state_len
    prefix = [np.full((n, 1), Vocab.BOS), a["scene"].astype(np.int64)]
    if fmt.character:
        prefix.append((a["character"].astype(np.int64) + TrajVocab.CHAR[0])[:, None])
    if fmt.rtg:
        prefix.append((reward_bin(a["return"]) + REWARD_BINS + TrajVocab.RTG[0])[:, None])
    prefix.append(np.full((n, 1), Vocab.SEP))
    blocks = np.zeros((n, horizon + 1, fmt.block), np.int64)
    blocks[:, :, :s] = a["states"]
    blocks[:, :horizon, s] = a["actions"].astype(np.int64) + Vocab.ACTION[0]
    blocks[:, :horizon, s + 1] = reward_token(a["reward"])
    tokens = np.concatenate(prefix + [blocks.reshape(n, -1)[:, : fmt.length - fmt.prefix_len]], axis=1)
    types = np.full((fmt.block,), STATE, np.int8)
    types[s], types[s + 1] = ACTION, REWARD
    types = np.concatenate([np.full(fmt.prefix_len, PREFIX, np.int8), np.tile(types, horizon + 1)[: fmt.length - fmt.prefix_len]])
    types = np.broadcast_to(types, (n, fmt.length)).copy()
    end = fmt.end_pos(a["length"].astype(np.int64))
    pos = np.arange(fmt.length)[None, :]
    tokens[np.arange(n), end] = np.where(a["terminated"], TrajVocab.END_TERMINATED, TrajVocab.END_TRUNCATED)
    types[np.arange(n), end] = END
    after = pos > end[:, None]
    tokens[after] = Vocab.PAD
    types[after] = PAD
    return {"tokens": tokens.astype(np.int32), "types": types, "mask": ~after}


def decode(tokens: np.ndarray, fmt: TrajectoryFormat) -> dict[str, np.ndarray]:
    """Inverse of `encode` for the fields tokens carry: scene, states (up to s_L; zeros after),
    actions, rewards (to 0.01), length, terminated/truncated, and the conditioning slots."""
    tokens = np.asarray(tokens, np.int64)
    n, horizon, s = tokens.shape[0], fmt.params.horizon, fmt.state_len
    is_end = (tokens == TrajVocab.END_TERMINATED) | (tokens == TrajVocab.END_TRUNCATED)
    end = np.argmax(is_end, axis=1)
    if not np.all(is_end.any(axis=1)):
        raise ValueError("token rows without an END token cannot be decoded")
    length = (end - fmt.prefix_len - s) // fmt.block
    body = np.concatenate([tokens[:, fmt.prefix_len :], np.zeros((n, 1), np.int64)], axis=1).reshape(n, horizon + 1, fmt.block)
    live = np.arange(horizon)[None, :] < length[:, None]
    out = {
        "scene": tokens[:, 1 : 1 + scene_length(fmt.params)],
        "states": np.where(np.arange(horizon + 1)[None, :, None] <= length[:, None, None], body[:, :, :s], 0),
        "actions": np.where(live, body[:, :horizon, s] - Vocab.ACTION[0], 0),
        "reward": np.where(live, token_reward(body[:, :horizon, s + 1]), 0.0),
        "length": length,
        "terminated": tokens[np.arange(n), end] == TrajVocab.END_TERMINATED,
    }
    out["truncated"] = ~out["terminated"]
    i = 1 + scene_length(fmt.params)
    if fmt.character:
        out["character"] = tokens[:, i] - TrajVocab.CHAR[0]
        i += 1
    if fmt.rtg:
        out["rtg"] = (tokens[:, i] - TrajVocab.RTG[0] - REWARD_BINS) / REWARD_SCALE
    return out
