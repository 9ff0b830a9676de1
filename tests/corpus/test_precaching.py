"""The pre-caching pair (tasks `fork` and `fork-visible`, character `committed`): the history holds
information about the future choice that the state does not on `fork`, and none on its twin."""

import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.corpus.ideal import Ideal, compute_ideal, hidden_information
from simulacra.world import task

MIX = "committed(0,0.1):1,committed(1,0.1):1"


@pytest.fixture(scope="module")
def pair():
    out = {}
    for name in ("fork", "fork-visible"):
        c = make_corpus(task(name), parse_mixture(MIX), 200, seed=5, store_obs=False)
        out[name] = (c, compute_ideal(c))
    return out


def _per_step(c, h):
    return np.array([h[c.mask[:, t], t].mean() for t in range(c.params.horizon) if c.mask[:, t].any()])


def test_the_signal_is_the_first_two_actions(pair):
    c, ideal = pair["fork"]
    e = c.episodes
    first_two = e.actions[:, :2]
    np.testing.assert_array_equal(first_two[e.character == 0], [[4, 4]] * int((e.character == 0).sum()))  # stay, stay
    np.testing.assert_array_equal(first_two[e.character == 1], [[3, 1]] * int((e.character == 1).sum()))  # left, right
    # the ideal knows the character from a_0 on, and not before
    np.testing.assert_allclose(ideal.posterior[:, 0], 0.5, atol=1e-6)
    np.testing.assert_allclose(ideal.posterior[np.arange(len(e.character)), 1, e.character], 1.0, atol=1e-6)


def test_twins_differ_only_in_the_switch_flag(pair):
    a, _ = pair["fork"]
    b, _ = pair["fork-visible"]
    np.testing.assert_array_equal(a.episodes.actions, b.episodes.actions)
    np.testing.assert_array_equal(a.episodes.length, b.episodes.length)
    diff = a.episodes.states != b.episodes.states
    assert diff.any()
    assert not np.delete(diff, 2, axis=-1).any()  # token 2 holds the flags (switch, key)
    # the flag differs exactly after a signal to the last coin
    pressed = np.asarray(b.episodes.character == 1)
    assert diff[pressed, 1, 2].all() and not diff[~pressed, :, 2].any()


def test_hidden_information_is_positive_on_fork_and_zero_on_its_twin(pair):
    c, ideal = pair["fork"]
    h = _per_step(c, hidden_information(c, ideal))
    assert h[0] == pytest.approx(0.0, abs=1e-9) and h[1] == pytest.approx(0.0, abs=1e-9)  # s_1 shows the signal cell
    # t = 2..6: back at the start, in the corridor: the state is the same for both characters,
    # the history knows which: I(c; h_t | s_t) = H(c) under the corpus's shares
    share = np.mean(c.episodes.character == 1)
    h_c = -(share * np.log(share) + (1 - share) * np.log(1 - share))
    np.testing.assert_allclose(h[2:6], h_c, atol=0.05)
    assert h[2:6].min() > 0.6
    v, ideal_v = pair["fork-visible"]
    assert np.abs(hidden_information(v, ideal_v)).max() < 1e-9


def test_hidden_information_by_hand():
    # two steps, two episodes with the same states; posteriors (1, 0) and (0, 1) at t = 1
    class Fake:
        mask = np.array([[True, True], [True, True]])

        class episodes:  # noqa: N801
            states = np.array([[[7], [8], [9]], [[7], [8], [9]]])

    post = np.array([[[0.5, 0.5], [1.0, 0.0]], [[0.5, 0.5], [0.0, 1.0]]])
    fields = {f: None for f in Ideal._fields}
    h = hidden_information(Fake, Ideal(**{**fields, "posterior": post}))
    np.testing.assert_allclose(h[:, 0], 0.0, atol=1e-12)  # pooled = own: no hidden information
    np.testing.assert_allclose(h[:, 1], np.log(2), atol=1e-12)  # pooled (0.5, 0.5), own point masses
