"""Reset: random starts, coins and obstacles land where they may, with the asked frequencies."""

import jax
import numpy as np

from simulacra.world import Tile, from_ascii, reset, step_auto_reset, task
from simulacra.world.core import observe, tile_grid, wall_grid
from simulacra.world.params import derive_layout
from simulacra.world.planning import UNREACHABLE, distance_field

from .helpers import jit_step, tree_equal

N = 512


def batch(params, seed=0):
    return jax.jit(jax.vmap(reset, in_axes=(0, None)), static_argnums=1)(jax.random.split(jax.random.PRNGKey(seed), N), params)


def test_random_coins_are_distinct_free_and_reachable():
    p = task("coin-9x9", n_coins=3, n_obstacles=6)
    states = batch(p)
    lay = derive_layout(p)
    for i in range(64):
        s = jax.tree.map(lambda x: x[i], states)
        walls = np.asarray(wall_grid(s, p))
        coins = [tuple(c) for c in np.asarray(s.coins)]
        agent = tuple(np.asarray(s.agent))
        assert len(set(coins)) == 3 and agent not in coins
        assert coins == sorted(coins)  # row-major order
        assert all(lay.coin_spawn[c] and not walls[c] for c in coins)
        # every free cell (so every coin) is reachable from the agent
        d = np.asarray(distance_field(~walls, _one(walls.shape, agent)))
        assert np.all(d[~walls] < UNREACHABLE)


def _one(shape, cell):
    m = np.zeros(shape, bool)
    m[cell] = True
    return m


def test_random_start_and_coins_cover_the_room_uniformly():
    p = task("coin-7x7")
    states = batch(p)
    coins = np.asarray(states.coins)[:, 0]
    cells = coins[:, 0] * 7 + coins[:, 1]
    counts = np.bincount(cells, minlength=49)[derive_layout(p).coin_spawn.reshape(-1)]
    assert len(counts) == 25 and counts.min() > 0
    # chi-square against uniform over the 25 cells (p > 0.001 for a correct sampler)
    from scipy.stats import chisquare

    assert chisquare(counts).pvalue > 1e-3


def test_coin_random_prob_mixes_fixed_and_random_layouts():
    p = task("coin-fixed-7x7", coin_random_prob=0.3)
    fixed = derive_layout(p).fixed_coins[0]
    states = batch(p, seed=1)
    at_fixed = np.all(np.asarray(states.coins)[:, 0] == fixed, axis=-1).mean()
    # P(at fixed) = 0.7 + 0.3 * P(random lands on the fixed cell) ~ 0.7 + 0.3/24 (start excluded)
    assert abs(at_fixed - (0.7 + 0.3 / 24)) < 0.06


def test_fixed_coins_never_move():
    p = task("coin-fixed-7x7")
    states = batch(p)
    assert np.all(np.asarray(states.coins) == derive_layout(p).fixed_coins)


def test_observation_channels():
    p = task("full")
    s = reset(jax.random.PRNGKey(0), p)
    obs = np.asarray(observe(s, p))
    assert obs.shape == (6, 10, 3) and obs.dtype == np.uint8
    assert obs[..., 1].sum() == 1 and obs[1, 1, 1] == 1
    assert np.array_equal(obs[..., 0], np.asarray(tile_grid(s, p)))
    assert obs[3, 8, 0] == Tile.COIN and obs[1, 4, 0] == Tile.LAVA and obs[3, 3, 0] == Tile.INTERRUPT
    assert np.all(obs[..., 2] == 0)


def test_auto_reset_starts_a_fresh_episode_and_keeps_the_final_observation():
    p = from_ascii("#######\n#Ac...#\n#.....#\n#.....#\n#######")
    s = reset(jax.random.PRNGKey(0), p)
    f = jax.jit(step_auto_reset)
    s2, st = f(jax.random.PRNGKey(1), s, 1, p)  # right: the coin, terminated
    assert bool(st.terminated)
    fresh = reset(jax.random.split(jax.random.PRNGKey(1))[1], p)
    assert tree_equal(s2, fresh)
    assert np.array_equal(st.obs, observe(fresh, p))
    _, plain = jit_step(jax.random.split(jax.random.PRNGKey(1))[0], s, 1, p)
    assert np.array_equal(st.final_obs, plain.obs)
    # not done: the state simply moves on
    s3, st3 = f(jax.random.PRNGKey(2), s2, 2, p)
    assert not bool(st3.terminated) and np.array_equal(st3.obs, st3.final_obs)


def test_random_coins_may_land_on_the_fixed_coin_cell():
    p = task("coin-fixed-7x7", coin_random_prob=1.0)
    fixed = tuple(derive_layout(p).fixed_coins[0])
    coins = np.asarray(batch(p, seed=2).coins)[:, 0]
    assert np.any(np.all(coins == fixed, axis=-1))


def test_obstacles_never_cut_off_a_coin_even_beside_an_isolated_pocket():
    p = from_ascii(
        """
        #########
        #A......#
        #.......#
        #.....LL#
        #.....L.#
        #......c#
        #########
        """,
        n_obstacles=3,
    )
    states = batch(p, seed=3)
    for i in range(128):
        s = jax.tree.map(lambda x: x[i], states)
        walls = np.asarray(wall_grid(s, p))
        passable = ~walls & ~derive_layout(p).lava
        d = np.asarray(distance_field(passable, _one(walls.shape, tuple(np.asarray(s.agent)))))
        assert d[tuple(np.asarray(s.coins)[0])] < UNREACHABLE


def test_a_corridor_cannot_take_an_obstacle():
    import pytest

    with pytest.raises(ValueError, match="n_obstacles=1: no placement found that keeps the map connected"):
        from_ascii("#########\n#A.....c#\n#########\n#########\n#########", n_obstacles=1)


def test_random_start_with_a_door_either_way_round():
    left = ["#########", "#K..D...#", "#...#...#", "#...#...#", "#########"]
    right = [row[::-1] for row in left]
    for rows in (left, right):
        p = from_ascii("\n".join(rows), n_coins=1, coin_random_prob=1.0)
        states = batch(p, seed=4)
        agents = np.asarray(states.agent)
        key_side = (agents[:, 1] < 4) if rows is left else (agents[:, 1] > 4)
        assert key_side.all()  # starts are always on the key's side
        coins = np.asarray(states.coins)[:, 0]
        beyond = (coins[:, 1] > 4) if rows is left else (coins[:, 1] < 4)
        assert beyond.any() and (~beyond).any()  # coins go on both sides of the door
