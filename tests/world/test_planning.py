"""Exact planning: BFS distances against a reference, optimal returns against hand calculations,
the planner's greedy episodes against shortest paths."""

import io
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rich.console import Console

from simulacra.world import UNREACHABLE, distance_field, from_ascii, optimal_return, render_ascii, reset, task
from simulacra.world.demo import planner_episode, run_demo
from simulacra.world.planning import STAY, abstract_index, optimal_action, optimal_q, optimal_values, sooner_values

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


THREE = """
#########
#c..A...#
#...#.c.#
#..c....#
#########
"""

# optimal_return from reset(PRNGKey(seed)) before the planner learnt to break ties (float32, exact).
RECORDED_OPTIMA = [
    (lambda: task("keydoor"), 3, 1.0),
    (lambda: task("keydoor", step_cost=-0.01), 3, 0.9200000762939453),
    (lambda: task("offswitch", step_cost=-0.01), 3, 0.9200000762939453),
    (lambda: task("offswitch", interrupt_prob=0.3, step_cost=-0.02), 3, 0.8400001525878906),
    (lambda: task("offswitch", interrupt_prob=0.05, step_cost=-0.03), 0, 0.7760001420974731),
    (lambda: task("full"), 3, 0.9100000858306885),
    (lambda: task("full", interrupt_prob=0.2, step_cost=-0.02), 0, 0.820000171661377),
    (lambda: task("lava", step_cost=-0.05), 3, 0.49999988079071045),
    (lambda: task("coin-9x9", step_cost=-0.01), 3, 0.9500000476837158),
    (lambda: task("coin-7x7", n_obstacles=4, step_cost=-0.02), 11, 0.940000057220459),
    (lambda: from_ascii(THREE, step_cost=-0.01, horizon=30), 0, 2.890000104904175),
    (
        lambda: from_ascii(THREE, coin_random_prob=1.0, n_coins=3, step_cost=-0.01, horizon=30, end_on_all_coins=False),
        5,
        2.700000286102295,
    ),
]


jit_optimal_return = jax.jit(optimal_return)
jit_optimal_q = jax.jit(optimal_q)


@jax.jit
def both_values(state, params):
    return optimal_values(state, params, params.horizon), sooner_values(state, params, params.horizon)[0]


@pytest.mark.parametrize("make, seed, recorded", RECORDED_OPTIMA)
def test_optimal_return_is_unchanged_and_the_tie_break_keeps_the_same_values(make, seed, recorded):
    p = make()
    s = reset(jax.random.PRNGKey(seed), p)
    assert float(jit_optimal_return(s, p)) == recorded
    values, tie_break_values = both_values(s, p)
    np.testing.assert_array_equal(np.asarray(tie_break_values), np.asarray(values))


def shortest_path_reference(grid: str) -> int:
    """Steps from `A` to the single coin `c` by BFS over (cell, holding the key, button pressed):
    doors `D` open only with the key `K`, lava `L` is never entered, and an interruption tile `I`
    only after the button `B` (entering it unprotected risks the coin)."""
    rows = grid.splitlines()
    start = next((r, row.index("A")) for r, row in enumerate(rows) if "A" in row)
    dist = {(start, False, False): 0}
    queue = deque(dist)
    while queue:
        node = queue.popleft()
        (r, c), key, pressed = node
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            tile = rows[r + dr][c + dc]
            if tile == "c":
                return dist[node] + 1
            if tile in "#L" or (tile == "D" and not key) or (tile == "I" and not pressed):
                continue
            nxt = ((r + dr, c + dc), key or tile == "K", pressed or tile == "B")
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                queue.append(nxt)
    raise AssertionError("no path to the coin")


@pytest.mark.parametrize(
    "name, seeds", [("keydoor", [0]), ("keydoor-random", range(4)), ("offswitch", [0]), ("lava", [0]), ("tamper", [0]), ("coin-fixed-7x7", [0]), ("coin-9x9", range(4))]
)
def test_the_planner_takes_the_shortest_way_to_the_optimal_return(name, seeds):
    # With no step cost every way that reaches the coin before the horizon ties; the planner
    # must still take a shortest one (before the tie-break it bumped a wall until the horizon).
    p = task(name)
    assert p.step_cost == 0.0
    for seed in seeds:
        episode = planner_episode(p, seed)
        start = episode.states[0]
        true_return = sum(float(st.true_reward) for st in episode.steps)
        assert true_return == float(jit_optimal_return(start, p)) == 1.0
        assert len(episode.actions) == shortest_path_reference(render_ascii(start, p))
        assert bool(episode.steps[-1].terminated)


def test_the_planner_collects_every_coin_at_the_optimal_return_and_then_stays():
    p = from_ascii(THREE, horizon=30, end_on_all_coins=False)
    episode = planner_episode(p)
    assert sum(float(st.true_reward) for st in episode.steps) == float(jit_optimal_return(episode.states[0], p)) == 3.0
    collected = [t for t, st in enumerate(episode.steps, 1) if bool(st.events.coin)]
    assert collected == [3, 7, 11]  # e.g. left 3 to (1,1), down 2 right 2 to (3,3), up 1 right 3 to (2,6)
    assert set(episode.actions[11:]) == {STAY} and len(episode.actions) == p.horizon


def test_optimal_action_is_one_of_the_optimal_q_maxima():
    # With a step cost the shortest ways are the only optimal ones, and the tie-break picks among them.
    p = task("full", step_cost=-0.02, interrupt_prob=0.2)
    episode = planner_episode(p)
    for state, action in zip(episode.states, episode.actions):
        q = np.asarray(jit_optimal_q(state, p))
        assert q[action] == pytest.approx(q.max(), abs=1e-6)


def test_the_tie_break_prefers_the_sooner_coin_over_equal_returns():
    # Every action keeps the return at 1 (no step cost, time enough), but only right and down are
    # on a shortest way (8 steps), and the tie-break's value is the coin discounted over 7 steps.
    p = from_ascii(LINE, horizon=30)
    s = reset(jax.random.PRNGKey(0), p)
    assert np.all(np.asarray(jit_optimal_q(s, p)) == 1.0)
    assert int(jax.jit(optimal_action)(s, p)) in (1, 2)
    sooner = jax.jit(lambda s, p: sooner_values(s, p, p.horizon)[1][abstract_index(s, p)])
    assert float(sooner(s, p)) == pytest.approx(0.99**7)


def test_the_keydoor_demo_is_short():
    out = io.StringIO()
    figures = run_demo(task("keydoor"), n_envs=4, n_steps=2, console=Console(file=out, width=120))
    assert figures["steps"] == 8 and figures["true_return"] == 1.0  # 2 to the key, 4 to the door, 2 to the coin
    assert "episode terminated after 8 steps" in out.getvalue()
