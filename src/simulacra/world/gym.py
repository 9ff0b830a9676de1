"""A Gymnasium adapter: one world as a `gymnasium.Env`, for peers (Stable-Baselines3, CleanRL ...).

Registered ids (importing `simulacra.world.gym` registers them):

    simulacra/Empty-8x8-v0, simulacra/Coin-7x7-v0, simulacra/Coin-9x9-v0,
    simulacra/CoinFixed-7x7-v0, simulacra/OffSwitch-v0, simulacra/Tamper-v0,
    simulacra/KeyDoor-v0, simulacra/Lava-v0, simulacra/Full-v0

`gymnasium.make("simulacra/Coin-9x9-v0", coin_random_prob=0.5)` passes knobs to `task`.
Observations are the world's symbolic (H, W, 3) uint8 grid; `info` carries `true_reward` and
the step's events. The world truncates at its own horizon, so no TimeLimit wrapper is added.
The observation is a small symbolic grid, not an image: with Stable-Baselines3 use `MlpPolicy`
(or a custom feature extractor), not `CnnPolicy`.
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

GYM_IDS = {
    "simulacra/Empty-8x8-v0": "empty-8x8",
    "simulacra/Coin-7x7-v0": "coin-7x7",
    "simulacra/Coin-9x9-v0": "coin-9x9",
    "simulacra/CoinFixed-7x7-v0": "coin-fixed-7x7",
    "simulacra/OffSwitch-v0": "offswitch",
    "simulacra/Tamper-v0": "tamper",
    "simulacra/KeyDoor-v0": "keydoor",
    "simulacra/Lava-v0": "lava",
    "simulacra/Full-v0": "full",
}


class SimulacraEnv(gymnasium.Env):
    """One simulacra world behind the Gymnasium API (single environment, numpy in and out)."""

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 8}

    def __init__(self, params: WorldParams | str = "empty-8x8", render_mode: str | None = None, **knobs: Any):
        if isinstance(params, str):
            params = task(params, **knobs)
        elif knobs:
            params = params.replace(**knobs)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.params = params
        self.render_mode = render_mode
        h, w = params.shape
        high = np.zeros((h, w, 3), np.uint8)
        high[..., 0], high[..., 1], high[..., 2] = Tile.COUNT - 1, 1, 3
        self.observation_space = spaces.Box(low=0, high=high, shape=(h, w, 3), dtype=np.uint8)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self._key = jax.random.PRNGKey(0)
        self._state = None

    def _next_key(self) -> jax.Array:
        self._key, sub = jax.random.split(self._key)
        return sub

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # Keys come from the env's seeded numpy generator, so `reset(seed=s)` is reproducible.
        self._key = jax.random.PRNGKey(int(self.np_random.integers(0, 2**31 - 1)))
        self._state = _reset(self._next_key(), self.params)
        return np.array(_observe(self._state, self.params)), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = int(action)
        if not 0 <= action < len(ACTIONS):
            raise ValueError(f"action must be in 0..{len(ACTIONS) - 1}, got {action}")
        self._state, st = _step(self._next_key(), self._state, jnp.int32(action), self.params)
        info = {"true_reward": float(st.true_reward)}
        info.update({f"event_{n}": bool(getattr(st.events, n)) for n in EVENT_NAMES})
        return np.array(st.obs), float(st.reward), bool(st.terminated), bool(st.truncated), info

    def render(self):
        if self._state is None or self.render_mode is None:
            return None
        if self.render_mode == "ansi":
            return render_ascii(self._state, self.params) + "\n"
        return render_rgb(self._state, self.params)


def register() -> None:
    """Register the named tasks with Gymnasium (idempotent)."""
    for gym_id, name in GYM_IDS.items():
        if gym_id not in gymnasium.registry:
            gymnasium.register(id=gym_id, entry_point="simulacra.world.gym:SimulacraEnv", kwargs={"params": name})


register()
