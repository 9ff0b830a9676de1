"""The World: a JAX gridworld family with known physics.

Pure, jittable, vmappable `reset(key, params)` and `step(key, state, action, params)`; worlds
drawn as ASCII maps (`from_ascii`, legend in `simulacra.world.params`) or taken by name
(`task`); the exact law of a step (`law`); exact planning (`distance_field`, `optimal_return`);
token encoding (`encode`/`decode`); rendering; a Gymnasium adapter (`simulacra.world.gym`).
"""

from simulacra.world.core import (
    EVENT_NAMES,
    OBS_CHANNELS,
    Events,
    State,
    Step,
    law,
    observe,
    reset,
    step,
    step_auto_reset,
    transition,
)
from simulacra.world.params import ACTIONS, LEGEND, Tile, WorldParams, from_ascii
from simulacra.world.planning import UNREACHABLE, distance_field, optimal_return
from simulacra.world.render import render_ascii, render_rgb
from simulacra.world.tasks import TASKS, task
from simulacra.world.tokens import Vocab, decode, encode, is_valid

__all__ = [
    "ACTIONS",
    "EVENT_NAMES",
    "LEGEND",
    "OBS_CHANNELS",
    "TASKS",
    "UNREACHABLE",
    "Events",
    "State",
    "Step",
    "Tile",
    "Vocab",
    "WorldParams",
    "decode",
    "distance_field",
    "encode",
    "from_ascii",
    "is_valid",
    "law",
    "observe",
    "optimal_return",
    "render_ascii",
    "render_rgb",
    "reset",
    "step",
    "step_auto_reset",
    "task",
    "transition",
]
