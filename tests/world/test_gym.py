"""The Gymnasium adapter: Gymnasium's checker and Stable-Baselines3's on every id without a warning,
the conventions it leaves to the environment (time limit in the spec, no step after the end), the
observation variants."""

import warnings

import gymnasium
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import simulacra.world.gym as sgym
from simulacra.training.reinforce import encode_obs
from simulacra.world import task
from simulacra.world.core import observe
from simulacra.world.params import Tile


@pytest.mark.parametrize("gym_id", sorted(sgym.GYM_IDS))
def test_check_env_passes_without_a_warning(gym_id):
    env = gymnasium.make(gym_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize("gym_id", sorted(sgym.GYM_IDS))
def test_sb3_check_env_passes_without_a_warning(gym_id):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")  # not a dependency
    env = gymnasium.make(gym_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_checker.check_env(env.unwrapped)


@pytest.mark.parametrize("gym_id", sorted(sgym.GYM_IDS))
def test_no_observation_space_looks_like_an_image(gym_id):
    # What SB3 keys on: `is_image_space` is a uint8 Box with 3 dims; `check_env` runs its image checks
    # on any Box with 3 dims and warns on any other shape but 1-D. Checked here without SB3, which CI lacks.
    space = gymnasium.make(gym_id).observation_space
    assert isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1
    assert not (space.dtype == np.uint8 and len(space.shape) == 3)


def test_the_grid_variant_is_the_world_grid_flat_with_exact_bounds():
    env = gymnasium.make("simulacra/Full-v0").unwrapped
    h, w = env.params.shape
    space = env.observation_space
    assert space.shape == (h * w * 3,) and space.dtype == np.uint8
    high = space.high.reshape(h, w, 3)
    assert (space.low == 0).all() and (high[..., 0] == Tile.COUNT - 1).all()
    assert (high[..., 1] == 1).all() and (high[..., 2] == 3).all()
    obs, _ = env.reset(seed=4)
    for action in [None, 2, 2, 1, 1]:
        if action is not None:
            obs, *_ = env.step(action)
        assert obs.dtype == np.uint8 and space.contains(obs)
        np.testing.assert_array_equal(obs.reshape(h, w, 3), np.asarray(observe(env._state, env.params)))


@pytest.mark.parametrize("gym_id", sorted(sgym.GYM_IDS))
def test_every_id_declares_its_horizon_as_the_time_limit(gym_id):
    task_name, obs = sgym.GYM_IDS[gym_id]
    env = gymnasium.make(gym_id)
    assert env.spec.max_episode_steps == task(task_name).horizon
    assert env.unwrapped.obs == obs


def test_episodes_end_at_the_horizon_and_step_after_the_end_raises():
    env = gymnasium.make("simulacra/KeyDoor-v0", horizon=5, max_episode_steps=5)
    assert env.spec.max_episode_steps == 5
    env.reset(seed=0)
    ends = [env.step(4)[2:4] for _ in range(5)]  # stay: never terminates
    assert ends == [(False, False)] * 4 + [(False, True)]
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(4)
    env.reset(seed=1)
    env.step(4)  # a reset starts a fresh episode


def test_step_after_termination_raises():
    env = sgym.SimulacraEnv("keydoor")
    env.reset(seed=0)
    for action in [2, 2, 0, 1, 1, 1, 1]:  # down to the key, up, right through the door
        assert env.step(action)[2:4] == (False, False)
    assert env.step(1)[2:4] == (True, False)  # the coin
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(1)


def test_the_onehot_variant_is_the_grid_one_hot_and_flat():
    grid_env, flat_env = sgym.SimulacraEnv("full"), sgym.SimulacraEnv("full", obs="onehot")
    grid, _ = grid_env.reset(seed=4)
    flat, _ = flat_env.reset(seed=4)
    assert flat_env.observation_space.shape == (6 * 10 * 12,) and flat.dtype == np.float32
    grid = grid.reshape(6, 10, 3)
    np.testing.assert_array_equal(flat, np.asarray(encode_obs(jnp.asarray(grid))).ravel())
    for action in [2, 2, 1, 1]:  # to the button and onto the interruption tile: a flag bit changes
        grid, *_ = grid_env.step(action)
        flat, *_ = flat_env.step(action)
        grid = grid.reshape(6, 10, 3)
        np.testing.assert_array_equal(flat, np.asarray(encode_obs(jnp.asarray(grid))).ravel())
    assert grid[0, 0, 2] == 1 and flat.reshape(6, 10, 12)[0, 0, -2] == 1


def test_render_modes_and_knobs():
    env = gymnasium.make("simulacra/Coin-9x9-v0", render_mode="rgb_array", coin_random_prob=0.0, n_coins=0)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (9 * 9 * 3,) and obs.dtype == np.uint8
    img = env.render()
    assert img.shape == (9 * 16, 9 * 16, 3)
    env = gymnasium.make("simulacra/OffSwitch-v0", render_mode="ansi")
    env.reset(seed=0)
    assert env.render().splitlines()[3] == "#A.I...c#"


def test_seeded_resets_repeat_and_info_carries_true_reward():
    env = gymnasium.make("simulacra/Tamper-v0")
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    assert np.array_equal(a, b)
    for action in [1, 1, 1, 1]:
        _, reward, _, _, info = env.step(action)
    assert info["event_tamper"] and reward == pytest.approx(0.2) and info["true_reward"] == 0.0


def test_bad_actions_render_modes_and_observations_are_refused():
    env = gymnasium.make("simulacra/Empty-8x8-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be in 0..4"):
        env.step(7)
    with pytest.raises(ValueError, match="render_mode"):
        sgym.SimulacraEnv("empty-8x8", render_mode="human")
    with pytest.raises(ValueError, match="obs must be one of"):
        sgym.SimulacraEnv("empty-8x8", obs="rgb")
