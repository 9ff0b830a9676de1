"""Rendering to ASCII and RGB."""

import jax
import numpy as np
import pytest

from simulacra.world import render_ascii, render_rgb, reset, task
from simulacra.world.render import AGENT_RGB, COIN_RGB

from .helpers import act


@pytest.mark.parametrize("name", ["offswitch", "tamper", "keydoor", "lava", "full", "empty-8x8"])
def test_ascii_of_a_fixed_start_is_the_map(name):
    p = task(name)
    assert render_ascii(reset(jax.random.PRNGKey(0), p), p) == "\n".join(p.layout)


def test_ascii_shows_obstacles_and_opened_doors():
    p = task("coin-7x7", n_obstacles=3)
    text = render_ascii(reset(jax.random.PRNGKey(0), p), p)
    assert text.count("o") == 3 and text.count("A") == 1 and text.count("c") == 1
    states, _ = act(task("keydoor"), ["down", "down"])
    assert "d" in render_ascii(states[-1], task("keydoor"))


def test_rgb_picture():
    p = task("coin-fixed-7x7")
    s = reset(jax.random.PRNGKey(0), p)
    img = render_rgb(s, p, cell=8)
    assert img.shape == (56, 56, 3) and img.dtype == np.uint8
    r, c = np.asarray(s.agent)
    assert np.array_equal(img[r * 8 + 4, c * 8 + 4], AGENT_RGB)
    cr, cc = np.asarray(s.coins)[0]
    assert np.array_equal(img[cr * 8 + 4, cc * 8 + 4], COIN_RGB)


def test_render_refuses_a_batch():
    p = task("coin-7x7")
    states = jax.vmap(reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), 2), p)
    with pytest.raises(ValueError, match="single state"):
        render_ascii(states, p)
