"""Characters: exact probabilities that mean what their docstrings say."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulacra.characters import (
    REGISTRY,
    Cautious,
    KeySeeker,
    Lazy,
    Mixture,
    Presser,
    Random,
    Seeker,
    Tamperer,
    navigate,
    parse_character,
    parse_mixture,
)
from simulacra.world import ACTIONS, task
from simulacra.world.core import reset

ALL = [Random(), Seeker(0.1), Cautious(0.1), Presser(0.1), Tamperer(0.1), KeySeeker(0.1), Lazy(0.2)]
A = {n: i for i, n in enumerate(ACTIONS)}


@jax.jit
def _probs(char, s, params):
    return char.probs(s, params, navigate(s, params))


def probs_at(char, params, seed=0):
    s = reset(jax.random.PRNGKey(seed), params)
    return np.asarray(_probs(char, s, params))


@pytest.mark.parametrize("name", ["coin-7x7", "offswitch", "tamper", "keydoor", "keydoor-random", "lava", "full"])
def test_every_character_gives_a_distribution_everywhere(name):
    p = task(name)
    batch = jax.jit(jax.vmap(lambda k: reset(k, p)))(jax.random.split(jax.random.PRNGKey(0), 16))
    for c in ALL:
        every = np.asarray(jax.jit(jax.vmap(lambda s: c.probs(s, p, navigate(s, p))))(batch))
        for pr in every:
            assert pr.shape == (5,) and np.all(pr >= 0) and abs(pr.sum() - 1) < 1e-5, (c.name, pr)


def test_seeker_walks_the_shortest_path_and_the_cautious_one_avoids_the_tile():
    p = task("offswitch")  # A(3,1), I(3,3): the shortest way runs right through I
    s = reset(jax.random.PRNGKey(0), p)
    s = s.replace(agent=jnp.array([3, 2], jnp.int32))  # next to the interruption tile
    nav = navigate(s, p)
    seek = np.asarray(Seeker(0.0).probs(s, p, nav))
    assert seek[A["right"]] == 1.0
    careful = np.asarray(Cautious(0.0).probs(s, p, nav))
    assert careful[A["right"]] == 0.0 and careful[A["down"]] == 1.0  # the detour along the bottom
    noisy = np.asarray(Cautious(0.5).probs(s, p, nav))
    assert noisy[A["right"]] == 0.0  # even its noise is safe


def test_presser_goes_for_the_button_then_the_coin():
    p = task("offswitch")
    s = reset(jax.random.PRNGKey(0), p)
    nav = navigate(s, p)
    assert np.asarray(Presser(0.0).probs(s, p, nav))[A["up"]] == 1.0  # B is above the start
    s = s.replace(switch_off=jnp.array(True))
    assert np.asarray(Presser(0.0).probs(s, p, nav))[A["right"]] == 1.0


def test_tamperer_stays_on_the_tile_and_keyseeker_fetches_the_key():
    p = task("tamper")  # T at (1,5)
    s = reset(jax.random.PRNGKey(0), p).replace(agent=jnp.array([1, 5], jnp.int32))
    assert np.asarray(Tamperer(0.0).probs(s, p, navigate(s, p)))[A["stay"]] == 1.0
    p = task("keydoor")  # K below the start
    s = reset(jax.random.PRNGKey(0), p)
    assert np.asarray(KeySeeker(0.0).probs(s, p, navigate(s, p)))[A["down"]] == 1.0


def test_noise_and_lazy_probabilities_are_exact():
    p = task("coin-7x7")
    pr = probs_at(Seeker(0.3), p)
    best = pr > 0.3 / 5 + 1e-6
    np.testing.assert_allclose(pr[~best], 0.3 / 5, rtol=1e-6)
    np.testing.assert_allclose(pr[best], 0.7 / best.sum() + 0.3 / 5, rtol=1e-6)
    np.testing.assert_allclose(probs_at(Lazy(0.4), p), [0.1, 0.1, 0.1, 0.1, 0.6], rtol=1e-6)
    np.testing.assert_allclose(probs_at(Random(), p), [0.2] * 5, rtol=1e-6)


def test_parsing_mixtures_and_characters():
    m = parse_mixture("seeker(0.2):3, random:1,lazy(wander=0.5)")
    assert m.names == ("seeker(0.2)", "random", "lazy(0.5)")
    np.testing.assert_allclose(m.weights, [0.6, 0.2, 0.2])
    assert parse_character("cautious").name == "cautious(0.1)"
    assert Mixture.from_list(m.to_list()) == m
    for bad, msg in [
        ("seker:1", "unknown character 'seker'"),
        ("seeker:-1", "positive"),
        ("seeker:x", "must be a number"),
        ("seeker(2)", "probability"),
        ("seeker(colour=1)", "cannot set"),
        ("seeker,seeker", "same character twice"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_mixture(bad)
    assert set(REGISTRY) == {"random", "seeker", "cautious", "presser", "tamperer", "keyseeker", "lazy", "committed",
                             "sleuth", "fixer", "guesser", "hedger"}
