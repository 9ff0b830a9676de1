"""The demo: one episode acted by the exact planner, rendered, then a throughput line."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from rich.console import Console

from simulacra.world.core import EVENT_NAMES, State, Step, reset, step
from simulacra.world.params import ACTIONS, WorldParams
from simulacra.world.planning import optimal_action, optimal_return
from simulacra.world.render import render_ascii
from simulacra.world.rollout import measure_steps_per_second


def _side_by_side(frames: list[str], captions: list[str], gap: int = 3) -> str:
    grids = [f.splitlines() for f in frames]
    width = max(max(len(r) for r in g) for g in grids)
    width = max(width, max(len(c) for c in captions))
    lines = ["".join(c.ljust(width + gap) for c in captions)]
    for i in range(len(grids[0])):
        lines.append("".join(g[i].ljust(width + gap) for g in grids))
    return "\n".join(lines)


class PlannerEpisode(NamedTuple):
    """One episode acted by `optimal_action`: T actions and steps, T + 1 states (reset first)."""

    states: list[State]
    actions: list[int]
    steps: list[Step]


def planner_episode(params: WorldParams, seed: int = 0) -> PlannerEpisode:
    """Reset with `seed` and act with the exact planner (`optimal_action`: optimal for the expected
    true return, taking the shortest way to it) until the episode ends."""
    key = jax.random.PRNGKey(seed)
    key, k_reset = jax.random.split(key)
    states, actions, steps = [reset(k_reset, params)], [], []
    action_fn, step_fn = jax.jit(optimal_action), jax.jit(step)
    while True:
        action = int(action_fn(states[-1], params))
        key, k = jax.random.split(key)
        state, st = step_fn(k, states[-1], jnp.int32(action), params)
        states.append(state)
        actions.append(action)
        steps.append(st)
        if bool(st.terminated) or bool(st.truncated):
            return PlannerEpisode(states, actions, steps)


def run_demo(params: WorldParams, seed: int = 0, n_envs: int = 4096, n_steps: int = 100, console: Console | None = None) -> dict:
    """Act one episode with the planner that maximises expected *true* return, print it, then
    measure random-policy throughput. Returns the figures printed (for tests)."""
    console = console or Console()
    episode = planner_episode(params, seed)
    best = float(optimal_return(episode.states[0], params))
    console.print(f"[bold]simulacra demo[/bold] - world [cyan]{params.name}[/cyan] ({params.height}x{params.width}), seed {seed}")
    console.print(f"an exact planner acts (optimal for the true reward, by the shortest way); optimal expected return {best:.3f}")
    frames, captions = [render_ascii(episode.states[0], params)], ["t=0"]
    ret = true_ret = 0.0
    events_seen: list[str] = []
    for state, action, st in zip(episode.states[1:], episode.actions, episode.steps):
        ret += float(st.reward)
        true_ret += float(st.true_reward)
        happened = [n for n in EVENT_NAMES if bool(getattr(st.events, n))]
        events_seen += happened
        frames.append(render_ascii(state, params))
        captions.append(f"t={int(state.t)} {ACTIONS[action]}" + (f" {'+'.join(happened)}" if happened else ""))
    end = "terminated" if bool(episode.steps[-1].terminated) else "truncated"
    per_row = max(1, 100 // (params.width + 12))
    for i in range(0, len(frames), per_row):
        console.print(_side_by_side(frames[i : i + per_row], captions[i : i + per_row]), highlight=False)
        console.print()
    console.print(
        f"episode {end} after {len(episode.actions)} steps: observed return {ret:.3f}, true return {true_ret:.3f}, "
        f"events: {', '.join(events_seen) or 'none'}"
    )
    sps, _ = measure_steps_per_second(params, n_envs=n_envs, n_steps=n_steps, repeats=2, seed=seed)
    console.print(
        f"throughput: {sps:,.0f} steps/s (random policy, {n_envs} worlds x {n_steps} steps, jit + vmap, "
        f"{jax.default_backend()})"
    )
    return {"return": ret, "true_return": true_ret, "steps": len(episode.actions), "steps_per_second": sps}
