"""A Gymnasium adapter: one world as a `gymnasium.Env`, for peers (Stable-Baselines3, CleanRL ...).

Registered ids (importing `simulacra.world.gym` registers them), each in two observation variants:

    simulacra/Empty-8x8-v0, simulacra/Coin-7x7-v0, simulacra/Coin-9x9-v0,
    simulacra/CoinFixed-7x7-v0, simulacra/OffSwitch-v0, simulacra/Tamper-v0,
    simulacra/KeyDoor-v0, simulacra/Lava-v0, simulacra/Full-v0
    simulacra/Empty-8x8-onehot-v0, ..., simulacra/Full-onehot-v0

`gymnasium.make("simulacra/Coin-9x9-v0", coin_random_prob=0.5)` passes knobs to `task`.

Observations (`obs=`):

* `"grid"` (the plain ids): the world's symbolic (H, W, 3) uint8 grid (`core.observe`), flattened
  row-major to an (H * W * 3,) uint8 vector in a Box with the exact bounds of each entry (tile id
  0..Tile.COUNT-1, agent 0..1, flags 0..3, or 0..15 in oracle worlds); `obs.reshape(*env.unwrapped.params.shape, 3)` is
  the grid again. It is flat because SB3 takes every 3-D box for an image: its `check_env` warns
  on any (H, W, 3) box, whatever the dtype (bounds not 0..255, smaller than 36x36), and its
  policies divide a uint8 one by 255. Flat, it is a plain vector to SB3.
* `"onehot"` (the `-onehot-v0` ids): a flat (H * W * 12,) float32 vector in {0, 1}, the grid
  (H, W, 12) flattened row-major: per cell the tile id one-hot (the 9 tiles of every world), the
  agent mask and the two flag bits (oracle worlds: all `Tile.COUNT` tiles and four flag bits, 19 per cell); the input the project's own PPO gets (`training.reinforce.encode_obs`), and
  the better input for an `MlpPolicy` (a tile id is a category, not a magnitude).

Gymnasium's `check_env` and SB3's `check_env` pass every registered id without a warning, and SB3's
`PPO("MlpPolicy", ...)` trains on either variant without one.

Episodes end at the world's horizon, and each id's `spec.max_episode_steps` is that horizon
(`gymnasium.make` adds a `TimeLimit` that agrees with it). When `horizon` is overridden, pass the
same `max_episode_steps` to `gymnasium.make`, or the `TimeLimit` cuts episodes at the default.
`step()` after the episode ended raises: call `reset()`.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces

from simulacra.world.core import EVENT_NAMES, observe, reset, step
from simulacra.world.params import ACTIONS, Tile, WorldParams
from simulacra.world.render import render_ascii, render_rgb
from simulacra.world.tasks import task

_reset = jax.jit(reset)
_step = jax.jit(step)
_observe = jax.jit(observe)

_TASK_IDS = {
    "Empty-8x8": "empty-8x8",
    "Coin-7x7": "coin-7x7",
    "Coin-9x9": "coin-9x9",
    "CoinFixed-7x7": "coin-fixed-7x7",
    "OffSwitch": "offswitch",
    "Tamper": "tamper",
    "KeyDoor": "keydoor",
    "Lava": "lava",
    "Full": "full",
}

OBSERVATIONS = ("grid", "onehot")
"""The observation variants (`SimulacraEnv(obs=...)`); see the module docstring."""

ONEHOT_CHANNELS = 12
"""Per-cell length of the one-hot observation: tile id one-hot (the 9 tiles of every world), agent
mask, two flag bits; in oracle worlds `ORACLE_ONEHOT_CHANNELS`."""
ORACLE_ONEHOT_CHANNELS = Tile.COUNT + 5
"""Per-cell length of the one-hot observation in oracle worlds: all `Tile.COUNT` tiles, the agent
mask and four flag bits (the hidden bit's status in bits 2-3)."""

GYM_IDS: dict[str, tuple[str, str]] = {
    f"simulacra/{name}{'' if obs == 'grid' else '-' + obs}-v0": (task_name, obs)
    for obs in OBSERVATIONS
    for name, task_name in _TASK_IDS.items()
}
"""Every registered id -> (task name, observation variant)."""


def onehot(grid: np.ndarray, oracle: bool = False) -> np.ndarray:
    """(H, W, 3) uint8 symbolic grid -> (H * W * ONEHOT_CHANNELS,) float32 one-hot vector
    (`ORACLE_ONEHOT_CHANNELS` per cell with `oracle`); `training.reinforce.encode_obs`, flat."""
    n_tiles, n_flags = (Tile.COUNT, 4) if oracle else (ONEHOT_CHANNELS - 3, 2)
    tile = np.eye(n_tiles, dtype=np.float32)[grid[..., 0]]
    flags = (grid[..., 2:3] >> np.arange(n_flags, dtype=np.uint8)) & 1
    return np.concatenate([tile, grid[..., 1:2], flags], axis=-1, dtype=np.float32).ravel()


class SimulacraEnv(gymnasium.Env):
    """One simulacra world behind the Gymnasium API (single environment, numpy in and out)."""

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 8}

    def __init__(self, params: WorldParams | str = "empty-8x8", render_mode: str | None = None, obs: str = "grid", **knobs: Any):
        if isinstance(params, str):
            params = task(params, **knobs)
        elif knobs:
            params = params.replace(**knobs)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if obs not in OBSERVATIONS:
            raise ValueError(f"obs must be one of {OBSERVATIONS}, got {obs!r}")
        self.params = params
        self.render_mode = render_mode
        self.obs = obs
        h, w = params.shape
        if obs == "grid":
            high = np.zeros((h, w, 3), np.uint8)
            high[..., 0], high[..., 1], high[..., 2] = Tile.COUNT - 1, 1, 15 if params.has_oracle else 3
            # Flat, not (H, W, 3): SB3 takes every 3-D box for an image (see the module docstring).
            self.observation_space = spaces.Box(low=0, high=high.ravel(), shape=(h * w * 3,), dtype=np.uint8)
        else:
            self.observation_space = spaces.Box(low=0.0, high=1.0, shape=(h * w * (ORACLE_ONEHOT_CHANNELS if params.has_oracle else ONEHOT_CHANNELS),), dtype=np.float32)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self._key = jax.random.PRNGKey(0)
        self._state = None
        self._ended = False

    def _next_key(self) -> jax.Array:
        self._key, sub = jax.random.split(self._key)
        return sub

    def _observation(self, grid: jax.Array) -> np.ndarray:
        grid = np.array(grid)
        return grid.ravel() if self.obs == "grid" else onehot(grid, self.params.has_oracle)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # Keys come from the env's seeded numpy generator, so `reset(seed=s)` is reproducible.
        self._key = jax.random.PRNGKey(int(self.np_random.integers(0, 2**31 - 1)))
        self._state = _reset(self._next_key(), self.params)
        self._ended = False
        return self._observation(_observe(self._state, self.params)), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if self._ended:
            raise RuntimeError("the episode has ended (terminated or truncated); call reset() before step()")
        action = int(action)
        if not 0 <= action < len(ACTIONS):
            raise ValueError(f"action must be in 0..{len(ACTIONS) - 1}, got {action}")
        self._state, st = _step(self._next_key(), self._state, jnp.int32(action), self.params)
        terminated, truncated = bool(st.terminated), bool(st.truncated)
        self._ended = terminated or truncated
        info = {"true_reward": float(st.true_reward)}
        info.update({f"event_{n}": bool(getattr(st.events, n)) for n in EVENT_NAMES})
        return self._observation(st.obs), float(st.reward), terminated, truncated, info

    def render(self):
        if self._state is None or self.render_mode is None:
            return None
        if self.render_mode == "ansi":
            return render_ascii(self._state, self.params) + "\n"
        return render_rgb(self._state, self.params)


def register() -> None:
    """Register every id of `GYM_IDS` with Gymnasium, its horizon as `max_episode_steps` (idempotent)."""
    for gym_id, (task_name, obs) in GYM_IDS.items():
        if gym_id not in gymnasium.registry:
            gymnasium.register(
                id=gym_id,
                entry_point="simulacra.world.gym:SimulacraEnv",
                kwargs={"params": task_name, "obs": obs},
                max_episode_steps=task(task_name).horizon,
            )


register()
