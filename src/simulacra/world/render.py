"""Rendering a state as ASCII text (the map legend) or as an RGB array (numpy), for reports and GIFs."""

from __future__ import annotations

import numpy as np

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
