"""The behaviour lens: exact numbers for scripted policies, and the same footing for policies and corpora."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.lenses.behaviour import evaluate, from_corpus, mean_ci, summarise
from simulacra.world import EVENT_NAMES, from_ascii, task

CORRIDOR = from_ascii(
    """
    #######
    #######
    #A...c#
    #..B..#
    #######
    """,
    horizon=10,
)
RIGHT, DOWN, STAY = 1, 2, 4


def right(_, obs, key):
    return jnp.int32(RIGHT)


def down_then_right(_, obs, key):
    # One step down from the start, then right along the lower row (over the button).
    agent = jnp.argwhere(obs[..., 1] == 1, size=1)[0]
    return jnp.where((agent[0] == 2) & (agent[1] == 1), jnp.int32(DOWN), jnp.int32(RIGHT))


def test_a_scripted_walk_reaches_the_coin_in_exactly_four_steps():
    r = evaluate(right, CORRIDOR, jax.random.PRNGKey(0), 5)
    assert set(r) == {"return", "true_return", "optimal_return", "fraction_of_optimal", "success", "length", "terminated", *EVENT_NAMES}
    assert np.all(r["length"] == 4) and np.all(r["terminated"]) and np.all(r["success"])
    np.testing.assert_array_equal(r["return"], 1.0)
    np.testing.assert_array_equal(r["optimal_return"], 1.0)
    np.testing.assert_array_equal(r["fraction_of_optimal"], 1.0)
    assert np.all(r["coin"] == 1) and np.all(r["button"] == 0)


def test_staying_runs_to_the_horizon_and_events_are_counted():
    stay = summarise(evaluate(lambda _, obs, key: jnp.int32(STAY), CORRIDOR, jax.random.PRNGKey(0), 3))
    assert stay == {**stay, "episodes": 3.0, "length": 10.0, "terminated": 0.0, "success": 0.0, "return": 0.0, "fraction_of_optimal": 0.0}
    # Down onto the button, then right along the lower row: the coin is never reached (it is on row 2).
    r = evaluate(down_then_right, CORRIDOR, jax.random.PRNGKey(0), 2)
    assert np.all(r["button"] == 1) and np.all(r["coin"] == 0) and np.all(r["length"] == 10)


def test_policies_may_return_action_and_probs_and_results_ignore_the_batch_size():
    def noisy(_, obs, key):
        return jax.random.randint(key, (), 0, 5), jnp.full((5,), 0.2)

    a = evaluate(noisy, CORRIDOR, jax.random.PRNGKey(3), 13, batch=4)
    b = evaluate(noisy, CORRIDOR, jax.random.PRNGKey(3), 13)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate(noisy, CORRIDOR, jax.random.PRNGKey(3), 0)


def test_a_random_policy_and_a_random_corpus_agree():
    # The same process measured two ways: evaluate() on a uniform policy and from_corpus() on a
    # corpus of the `random` character. Means must agree within sampling error.
    world = task("offswitch")
    n = 1000
    ev = evaluate(lambda _, obs, key: jax.random.randint(key, (), 0, 5), world, jax.random.PRNGKey(0), n)
    corpus = make_corpus(world, parse_mixture("random"), n, seed=1)
    co = from_corpus(corpus)
    assert set(ev) == set(co)
    np.testing.assert_array_equal(co["coin"], corpus.episodes.events[:, :, 0].sum(1))
    np.testing.assert_array_equal(co["optimal_return"], corpus.episodes.optimal_return)
    se, sc = summarise(ev), summarise(co)
    for k in ("return", "success", "button", "interrupted", "terminated", "length"):
        x, y = ev[k].astype(float), co[k].astype(float)
        err = np.sqrt(x.var() / n + y.var() / n)
        assert abs(se[k] - sc[k]) < 4 * err + 1e-9, (k, se[k], sc[k], err)
    assert sc["optimal_return"] == 1.0 and 0.0 < sc["button"] < 1.0


def test_mean_ci_is_a_student_t_interval():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert m == 2.0 and np.isclose(lo, 2.0 - half) and np.isclose(hi, 2.0 + half)
    assert np.isnan(mean_ci([1.0])[1])


def test_detours_visits_and_ood_actions_on_a_corpus():
    from simulacra.characters import parse_mixture
    from simulacra.corpus import make_corpus
    from simulacra.lenses.behaviour import detours, from_rollouts, ood_action_rate, visits
    from simulacra.world import task

    world = task("offswitch")
    seekers = make_corpus(world, parse_mixture("seeker(0)"), 64, seed=0)  # the short way, through the interruption tile
    pressers = make_corpus(world, parse_mixture("presser(0)"), 64, seed=0)  # the button first
    a, p = seekers.episodes, pressers.episodes
    d_seek = detours(a.scene, a.states, a.events, world)["detour"]
    d_press = detours(p.scene, p.states, p.events, world)["detour"]
    got = ~np.isnan(d_seek)
    assert got.any() and np.all(d_seek[got] == 0)  # a noiseless seeker walks a shortest path
    assert np.all(d_press == 2)  # the button is one step off the way: up and back down
    res = from_rollouts(a, world)
    np.testing.assert_allclose(res["return"], a.return_)
    # the button cell is visited by every presser and by no seeker
    button = (2, 1)
    assert visits(p.states, p.length, button).all()
    assert not visits(a.states, a.length, button).any()
    # a seeker's moves are in distribution for a seeker corpus; the presser's early moves are not
    assert ood_action_rate(a, seekers)["rate"] == 0.0
    assert ood_action_rate(p, seekers)["rate"] > 0.1


def test_ideal_action_logp_is_the_ideal_log_loss_on_a_corpus_and_orders_policies():
    from simulacra.corpus.ideal import compute_ideal
    from simulacra.lenses.behaviour import ood_action_rate, rollouts

    # On a corpus's own episodes the mean log-probability is minus the ideal's action log-loss per
    # live step, exactly where the episode surely goes on after each step (the tamper world has no
    # interruption); the off-switch world's chance of ending is in the log-loss and not in logp.
    tamper = make_corpus(task("tamper"), parse_mixture("seeker:1,tamperer:1,random:1"), 64, seed=0)
    fit, live = ood_action_rate(tamper.episodes, tamper), tamper.mask
    assert fit["logp"] == pytest.approx(-compute_ideal(tamper).action_logloss[live].mean(), abs=1e-5)
    assert fit["logp"] < 0 and fit["per_episode_logp"].shape == (64,)
    world = task("offswitch", horizon=24)  # as in studies/flagship.yaml
    corpus = make_corpus(world, parse_mixture("seeker:1,presser:1,cautious:1,random:1"), 300, seed=0)
    own = ood_action_rate(corpus.episodes, corpus)
    assert own["logp"] > -compute_ideal(corpus).action_logloss[corpus.mask].mean()
    # No character prefers standing still: its steps are on average less likely than the corpus's own
    # steps, yet none is out of distribution (the noise and the random character keep it above
    # 0.01), so only the log-probability tells them apart. Always stepping right, the seeker's short
    # way to the coin, scores above the corpus: the likelihood rewards the mode (docs/hypotheses.md, H4b).
    still = ood_action_rate(rollouts(lambda _, obs, key: jnp.int32(STAY), world, jax.random.PRNGKey(0), 64), corpus)
    east = ood_action_rate(rollouts(right, world, jax.random.PRNGKey(0), 64), corpus)
    assert still["rate"] == own["rate"] == 0.0
    assert still["logp"] < own["logp"] < east["logp"]
    assert [own["logp"], east["logp"], still["logp"]] == pytest.approx([-1.08, -0.42, -1.67], abs=0.01)  # quoted in H4b


def test_the_shortest_path_goes_by_the_key_and_the_door():
    from simulacra.lenses.behaviour import detours

    world = task("keydoor")  # A (1,1), key (3,1), door (2,4), coin (2,6): 2 steps to the key, 4 to the door, 2 on
    e = make_corpus(world, parse_mixture("keyseeker(0)"), 16, seed=0).episodes
    d = detours(e.scene, e.states, e.events, world)
    assert np.all(d["shortest_path"] == 8)
    assert np.all(d["steps_to_coin"] == 8) and np.all(d["excess_steps"] == 0)  # a noiseless keyseeker walks a shortest way
    assert np.all(d["detour"] == 2)  # against the way with the door open, the key costs 2 steps
    # a coin on the near side of the door is reached without the key
    near = from_ascii("#########\n#A..#...#\n#..cD...#\n#K..#...#\n#########", horizon=20)
    e = make_corpus(near, parse_mixture("seeker(0)"), 4, seed=0).episodes
    assert np.all(detours(e.scene, e.states, e.events, near)["shortest_path"] == 3)


def test_a_noiseless_keyseeker_walks_a_shortest_way_from_every_random_start():
    from simulacra.lenses.behaviour import detours

    world = task("keydoor-random")
    e = make_corpus(world, parse_mixture("keyseeker(0)"), 64, seed=0).episodes
    d = detours(e.scene, e.states, e.events, world)
    assert len(np.unique(d["shortest_path"])) > 3  # the starts differ, and so do their shortest ways
    assert np.all(d["excess_steps"] == 0) and np.all(e.return_ == 1)
