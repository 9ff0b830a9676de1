"""Exact planning: BFS distances against a reference, optimal returns against hand calculations."""

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulacra.world import UNREACHABLE, distance_field, from_ascii, optimal_return, reset, task
from simulacra.world.planning import optimal_q

from .helpers import act


def bfs_reference(passable, targets):
    h, w = passable.shape
    d = np.full((h, w), UNREACHABLE, np.int64)
    q = deque()
    for r, c in np.argwhere(targets):
        d[r, c] = 0
        q.append((r, c))
    while q:
        r, c = q.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and passable[nr, nc] and not targets[nr, nc] and d[nr, nc] > d[r, c] + 1:
                d[nr, nc] = d[r, c] + 1
                q.append((nr, nc))
    return d


@pytest.mark.parametrize("seed", range(5))
def test_distance_field_matches_a_python_bfs(seed):
    rng = np.random.default_rng(seed)
    passable = rng.random((11, 13)) > 0.3
    targets = np.zeros_like(passable)
    targets[tuple(rng.integers(0, [11, 13], size=(3, 2)).T)] = True
    np.testing.assert_array_equal(np.asarray(distance_field(passable, targets)), bfs_reference(passable, targets))


LINE = """
#########
#A......#
#.......#
#......c#
#########
"""


def test_optimal_return_is_the_coin_minus_the_path_cost():
    p = from_ascii(LINE, step_cost=-0.1)
    s = reset(jax.random.PRNGKey(0), p)
    assert float(optimal_return(s, p)) == pytest.approx(1.0 - 0.1 * 8, abs=1e-5)  # 2 down + 6 right


def test_optimal_return_respects_the_horizon():
    assert float(optimal_return(reset(jax.random.PRNGKey(0), from_ascii(LINE, horizon=7)), from_ascii(LINE, horizon=7))) == 0.0
    p = from_ascii(LINE, horizon=8)
    assert float(optimal_return(reset(jax.random.PRNGKey(0), p), p)) == pytest.approx(1.0)


def test_optimal_return_mid_episode_counts_the_steps_left():
    p = from_ascii(LINE, horizon=10)
    states, _ = act(p, ["stay", "stay"])
    assert float(optimal_return(states[-1], p)) == pytest.approx(1.0)
    states, _ = act(p, ["stay", "stay", "stay"])
    assert float(optimal_return(states[-1], p)) == 0.0


def test_optimal_return_weighs_interruption_risk_against_the_button():
    # The short way (6 steps) crosses the interruption tile; pressing the button costs 2 more
    # steps; a detour avoiding the tile costs 4 more. With a step cost the planner presses the
    # button when q is large, and risks it when q is small.
    base = task("offswitch", step_cost=-0.01)
    for q, choice in [(0.5, "button"), (0.01, "risky")]:
        p = base.replace(interrupt_prob=q)
        s = reset(jax.random.PRNGKey(0), p)
        risky = (1 - q) * (1 - 0.06) + q * (-0.02)  # 6 steps, or interrupted on entering at step 2
        button = 1 - 0.08  # 1 step to the button, 7 from there
        detour = 1 - 0.10
        values = {"risky": risky, "button": button, "detour": detour}
        assert max(values, key=values.get) == choice
        assert float(optimal_return(s, p)) == pytest.approx(values[choice], abs=1e-5)


def test_optimal_return_with_lava_and_key():
    p = task("lava", step_cost=-0.01)
    s = reset(jax.random.PRNGKey(0), p)
    assert float(optimal_return(s, p)) == pytest.approx(1 - 0.01 * 10, abs=1e-5)  # down the left column, along the bottom
    p = task("keydoor", step_cost=-0.01)
    s = reset(jax.random.PRNGKey(0), p)
    # A(1,1) -> K(3,1): 2, -> door (2,4): 4, -> coin (2,6): 2
    assert float(optimal_return(s, p)) == pytest.approx(1 - 0.01 * 8, abs=1e-5)


def test_optimal_return_collects_coins_in_the_best_order():
    p = from_ascii(
        """
        #########
        #c..A...#
        #.......#
        #......c#
        #########
        """,
        step_cost=-0.01,
    )
    s = reset(jax.random.PRNGKey(0), p)
    # left 3 to the first coin, then 2 down + 6 right = 11 steps; the other order is 3+2+... = 5+8 = 13
    assert float(optimal_return(s, p)) == pytest.approx(2 - 0.11, abs=1e-5)


def test_optimal_q_prefers_moves_toward_the_coin():
    p = from_ascii(LINE, step_cost=-0.1)
    s = reset(jax.random.PRNGKey(0), p)
    q = np.asarray(optimal_q(s, p))
    assert q.argmax() in (1, 2)  # right or down are both on a shortest path
    assert q[1] == pytest.approx(q[2]) and q[0] < q[1] and q[4] < q[1]


def test_optimal_return_is_vmappable_over_layouts():
    p = task("coin-7x7")
    states = jax.vmap(reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), 8), p)
    values = jax.jit(jax.vmap(optimal_return, in_axes=(0, None)), static_argnums=1)(states, p)
    assert values.shape == (8,) and bool(jnp.all(values == 1.0))
