"""`Episodes`: a batch of episodes of one world, as numpy arrays with named, typed fields.

Every producer of episodes returns one: corpus generation (`corpus.make_corpus`; a `Corpus` is
episodes plus provenance), a trained model acting in the world (`model.Simulator.act`), and an
agent's rollouts (`lenses.behaviour.rollouts`). Every lens reads them by field, so a measure
means the same thing whichever process produced the episodes.

N episodes, T = the world's horizon; steps t >= length are padding (`mask`):

    scene (N, 2+H*W) int16         the episode's scene tokens (world.tokens)
    states (N, T+1, S) int16       state tokens of s_0 .. s_T (frozen after the end)
    actions (N, T) int8            reward, true_reward (N, T) float32
    events (N, T, E) bool          per step, the events of `world.core.EVENT_NAMES`
    length (N,) int16              terminated, truncated (N,) bool
    return_, true_return, optimal_return (N,) float32   (stored as "return", …)

Optional fields (None when the producer has none):

    rtg (N, T) float32             observed return-to-go (corpora)
    character (N,) int8            index of the acting character in the mixture (corpora)
    obs (N, T+1, H, W, 3) uint8    observations (corpora generated with `store_obs`)
    action_probs (N, T, 5) float32 the acting model's distribution over actions at each step
    tokens (N, L) int32            each episode as the token row a model was fed (global ids)
"""

from __future__ import annotations

import dataclasses

import numpy as np

DTYPES = {
    "scene": np.int16,
    "states": np.int16,
    "actions": np.int8,
    "reward": np.float32,
    "true_reward": np.float32,
    "events": np.bool_,
    "length": np.int16,
    "terminated": np.bool_,
    "truncated": np.bool_,
    "return": np.float32,
    "true_return": np.float32,
    "optimal_return": np.float32,
    "rtg": np.float32,
    "character": np.int8,
    "obs": np.uint8,
    "action_probs": np.float32,
    "tokens": np.int32,
}
"""The dtype of every array, by its stored name."""

OPTIONAL = ("rtg", "character", "obs", "action_probs", "tokens")


def _field(name: str) -> str:
    return "return_" if name == "return" else name


@dataclasses.dataclass(frozen=True, eq=False)
class Episodes:
    """Episodes of one world (see the module docstring for shapes)."""

    scene: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    reward: np.ndarray
    true_reward: np.ndarray
    events: np.ndarray
    length: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    return_: np.ndarray
    true_return: np.ndarray
    optimal_return: np.ndarray
    rtg: np.ndarray | None = None
    character: np.ndarray | None = None
    obs: np.ndarray | None = None
    action_probs: np.ndarray | None = None
    tokens: np.ndarray | None = None

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Episodes":
        """Episodes from arrays by their stored names ("return" for `return_`), cast to `DTYPES`;
        a missing required array raises KeyError naming it."""
        unknown = [k for k in arrays if k not in DTYPES]
        if unknown:
            raise KeyError(f"unknown episode array(s) {unknown}; known: {', '.join(DTYPES)}")
        missing = [k for k in DTYPES if k not in arrays and k not in OPTIONAL]
        if missing:
            raise KeyError(f"missing episode array(s) {missing}")
        return cls(**{_field(k): np.ascontiguousarray(np.asarray(v).astype(DTYPES[k], copy=False)) for k, v in arrays.items()})

    @classmethod
    def from_steps(cls, scene, states, actions, reward, true_reward, events, live, terminated, optimal_return, **optional) -> "Episodes":
        """Episodes from per-step records of a batched rollout (batch first, zero after the end):
        `live` (N, T) marks the steps that happened and `terminated` (N, T) the step on which an
        episode terminated; length, termination, truncation and the returns are derived from them.
        `optional` holds optional fields by name (`action_probs`, `tokens` …)."""
        reward, true_reward = np.asarray(reward, np.float32), np.asarray(true_reward, np.float32)
        ended = np.asarray(terminated).any(1)
        return cls.from_arrays(
            {
                "scene": scene,
                "states": states,
                "actions": actions,
                "reward": reward,
                "true_reward": true_reward,
                "events": events,
                "length": np.asarray(live).sum(1),
                "terminated": ended,
                "truncated": ~ended,
                "return": reward.sum(1),
                "true_return": true_reward.sum(1),
                "optimal_return": optimal_return,
                **optional,
            }
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by their stored names (optional fields only when present)."""
        out = {}
        for name in DTYPES:
            value = getattr(self, _field(name))
            if value is not None:
                out[name] = value
        return out

    @property
    def n_episodes(self) -> int:
        return int(self.length.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[1])

    @property
    def mask(self) -> np.ndarray:
        """(N, T) bool: real steps (t < length)."""
        return np.arange(self.horizon)[None, :] < self.length[:, None]

    def subset(self, episodes) -> "Episodes":
        """The chosen episodes (a boolean mask or indices)."""
        return Episodes(**{_field(k): v[episodes] for k, v in self.arrays().items()})

    def replace(self, **changes) -> "Episodes":
        return dataclasses.replace(self, **changes)

    @staticmethod
    def concatenate(parts: "list[Episodes]") -> "Episodes":
        """The episodes of every part, in order (the parts must hold the same optional fields)."""
        names = parts[0].arrays().keys()
        return Episodes.from_arrays({k: np.concatenate([p.arrays()[k] for p in parts]) for k in names})
