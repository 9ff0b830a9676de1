"""Rendering a state as ASCII text (the map legend) or as an RGB array (numpy), and episodes as
animated GIFs: `episode_frames` renders a time-stacked `State`, `tile_episodes` puts several
episodes side by side into one strip, and `rollout_gif` writes frames as a looping GIF."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from simulacra.world.core import State, tile_grid, wall_grid
from simulacra.world.params import Tile, WorldParams, derive_layout

_TILE_CHAR = {
    Tile.FLOOR: ".",
    Tile.WALL: "#",
    Tile.COIN: "c",
    Tile.LAVA: "L",
    Tile.INTERRUPT: "I",
    Tile.BUTTON: "B",
    Tile.TAMPER: "T",
    Tile.KEY: "K",
    Tile.DOOR: "D",
    Tile.CLUE: "C",
    Tile.FIXER: "F",
    Tile.ANSWER0: "0",
    Tile.ANSWER1: "1",
    Tile.HEDGE: "?",
}

# RGB colours per tile id.
PALETTE = np.array(
    [
        [235, 235, 228],  # floor
        [70, 70, 80],  # wall
        [235, 235, 228],  # coin (drawn as a disc on floor)
        [230, 90, 30],  # lava
        [200, 160, 230],  # interruption tile
        [60, 160, 220],  # button
        [240, 120, 200],  # tamper tile
        [235, 235, 228],  # key (drawn as a disc on floor)
        [150, 100, 50],  # door
        [120, 210, 200],  # clue
        [250, 160, 60],  # fixer
        [60, 90, 200],  # answer 0
        [200, 50, 60],  # answer 1
        [160, 160, 160],  # hedge
    ],
    dtype=np.uint8,
)
AGENT_RGB = np.array([40, 170, 80], np.uint8)
COIN_RGB = np.array([245, 200, 20], np.uint8)
KEY_RGB = np.array([160, 120, 20], np.uint8)
OBSTACLE_RGB = np.array([120, 120, 130], np.uint8)


def _single(state: State) -> State:
    if np.ndim(state.t) != 0:
        raise ValueError("render expects a single state; index a batch first, e.g. jax.tree.map(lambda x: x[0], states)")
    return state


def render_ascii(state: State, params: WorldParams) -> str:
    """The grid as text in the map legend: `A` agent, `o` a random obstacle, `d` a door the agent
    can pass (holding the key); everything else as in `simulacra.world.params.LEGEND`."""
    state = _single(state)
    tiles = np.asarray(tile_grid(state, params))
    lay = derive_layout(params)
    chars = np.vectorize(_TILE_CHAR.get)(tiles).astype("<U1")
    chars[np.asarray(wall_grid(state, params)) & ~lay.walls] = "o"
    if bool(state.has_key):
        chars[lay.door] = "d"
    r, c = np.asarray(state.agent)
    chars[r, c] = "A"
    return "\n".join("".join(row) for row in chars)


def _disc(cell: int, frac: float) -> np.ndarray:
    y, x = np.mgrid[:cell, :cell] + 0.5
    return (y - cell / 2) ** 2 + (x - cell / 2) ** 2 <= (frac * cell / 2) ** 2


def render_rgb(state: State, params: WorldParams, cell: int = 16) -> np.ndarray:
    """(H*cell, W*cell, 3) uint8 picture of a single state."""
    if cell < 4:
        raise ValueError(f"cell must be at least 4 pixels, got {cell}")
    state = _single(state)
    tiles = np.asarray(tile_grid(state, params))
    lay = derive_layout(params)
    img = PALETTE[tiles]  # (H, W, 3)
    img[np.asarray(wall_grid(state, params)) & ~lay.walls] = OBSTACLE_RGB
    img = np.repeat(np.repeat(img, cell, axis=0), cell, axis=1)
    big, small = _disc(cell, 0.8), _disc(cell, 0.5)
    grid_lines = np.zeros((cell, cell), bool)
    grid_lines[0, :] = grid_lines[:, 0] = True

    def paint(r, c, mask, rgb):
        block = img[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell]
        block[mask] = rgb

    h, w = tiles.shape
    for r in range(h):
        for c in range(w):
            paint(r, c, grid_lines, np.array([200, 200, 195], np.uint8))
            if tiles[r, c] == Tile.COIN:
                paint(r, c, small, COIN_RGB)
            elif tiles[r, c] == Tile.KEY:
                paint(r, c, small, KEY_RGB)
    ar, ac = np.asarray(state.agent)
    paint(ar, ac, big, AGENT_RGB)
    return img


def episode_frames(states: State, params: WorldParams, length: int | None = None, cell: int = 16) -> list[np.ndarray]:
    """Frames of one episode from a time-stacked `State` (leading axis T+1, e.g. the states a
    scan collected), the first `length + 1` of them when given."""
    n = int(np.shape(states.t)[0])
    if length is not None:
        n = min(n, int(length) + 1)
    states = jax.device_get(states)  # slicing numpy arrays compiles nothing (device arrays: one program per leaf shape)
    return [render_rgb(jax.tree.map(lambda x, i=i: x[i], states), params, cell=cell) for i in range(n)]


def tile_episodes(episodes: Sequence[Sequence[np.ndarray]], gap: int = 4, background: int = 255) -> list[np.ndarray]:
    """Several episodes side by side in one strip of frames: each episode holds its last frame
    once it has ended, and frames of different heights are padded at the bottom."""
    episodes = [list(e) for e in episodes if len(e)]
    if not episodes:
        raise ValueError("tile_episodes needs at least one episode with a frame")
    height = max(e[0].shape[0] for e in episodes)
    n = max(len(e) for e in episodes)
    out = []
    for t in range(n):
        parts = []
        for k, e in enumerate(episodes):
            f = np.asarray(e[min(t, len(e) - 1)], np.uint8)
            if f.shape[0] < height:
                f = np.concatenate([f, np.full((height - f.shape[0], *f.shape[1:]), background, np.uint8)])
            if k:
                parts.append(np.full((height, gap, 3), background, np.uint8))
            parts.append(f)
        out.append(np.concatenate(parts, axis=1))
    return out


def rollout_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = 4.0, hold_last: int = 3) -> Path:
    """Write `frames` ((H, W, 3) uint8 each) as an animated, looping GIF at `path`, atomically
    (a temporary sibling, then `os.replace`). The last frame is shown `hold_last` frames longer
    so the end of the episode can be read before the loop restarts."""
    if len(frames) == 0:
        raise ValueError("rollout_gif needs at least one frame")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    images = []
    for i, f in enumerate(frames):
        a = np.asarray(f)
        if a.ndim != 3 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise ValueError(f"frame {i} must be an (H, W, 3) uint8 array, got {a.dtype} {a.shape}")
        images.append(Image.fromarray(a, "RGB"))
    ms = max(20, int(round(1000 / fps)))
    durations = [ms] * len(images)
    durations[-1] = ms * (1 + max(0, hold_last))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        # disposal 1 keeps each full frame; Pillow still merges identical consecutive frames.
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0, disposal=1)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
