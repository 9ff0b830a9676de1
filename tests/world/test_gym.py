"""The Gymnasium adapter."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import simulacra.world.gym as sgym


@pytest.mark.parametrize("gym_id", sorted(sgym.GYM_IDS))
def test_check_env_passes(gym_id):
    env = gymnasium.make(gym_id)
    check_env(env.unwrapped, skip_render_check=True)


def test_render_modes_and_knobs():
    env = gymnasium.make("simulacra/Coin-9x9-v0", render_mode="rgb_array", coin_random_prob=0.0, n_coins=0)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (9, 9, 3) and obs.dtype == np.uint8
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
        _, reward, term, trunc, info = env.step(action)
    assert info["event_tamper"] and reward == pytest.approx(0.2) and info["true_reward"] == 0.0


def test_bad_actions_and_render_modes_are_refused():
    env = gymnasium.make("simulacra/Empty-8x8-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be in 0..4"):
        env.step(7)
    with pytest.raises(ValueError, match="render_mode"):
        sgym.SimulacraEnv("empty-8x8", render_mode="human")
