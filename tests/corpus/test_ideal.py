"""The ideal predictor: a proper posterior, exact on one-character corpora, better than any character."""

import jax
import numpy as np
import pytest
from scipy.stats import chisquare

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.corpus.ideal import compute_ideal, logloss_by_type, token_logloss
from simulacra.corpus.tokens import ACTION, END, REWARD, STATE, TrajectoryFormat, TrajVocab, decode, encode
from simulacra.world import law, task
from simulacra.world.tokens import decode as decode_state


@pytest.fixture(scope="module")
def mixed():
    c = make_corpus(task("tamper"), parse_mixture("tamperer(0.1):1,random:1,seeker(0.1):1"), 400, seed=3, store_obs=False)
    return c, compute_ideal(c)


def test_posterior_is_a_distribution_and_finds_the_character(mixed):
    c, ideal = mixed
    m = c.mask
    np.testing.assert_allclose(ideal.posterior[m].sum(-1), 1.0, atol=1e-5)
    long = c.episodes.length >= 20
    assert long.sum() > 50
    last = c.episodes.length[long] - 1
    final = ideal.posterior[long, last]  # (n, C)
    assert np.mean(final.argmax(-1) == c.episodes.character[long]) > 0.95
    assert np.median(final[np.arange(long.sum()), c.episodes.character[long]]) > 0.99


def test_mixed_ideal_beats_every_single_character(mixed):
    c, ideal = mixed
    m = c.mask
    best = ideal.action_logloss[m].mean()
    for i in range(len(c.mixture.names)):
        assert best < ideal.character_logloss[..., i][m].mean()


def test_one_character_ideal_is_that_characters_policy():
    c = make_corpus(task("offswitch"), parse_mixture("seeker(0.2)"), 100, seed=0, store_obs=False)
    ideal = compute_ideal(c)
    m = c.mask
    assert np.all(ideal.posterior[m] == 1.0)
    # -log P(action) = -log pi(a) - log P(the episode went on at that step)
    first = np.zeros_like(m)
    first[:, 0] = True
    np.testing.assert_allclose(ideal.action_logloss[first], ideal.character_logloss[first][:, 0], rtol=1e-5)


def test_total_ideal_logloss_is_minus_log_probability_of_the_episode():
    # A world where reward tokens are stochastic too (delay + interruption): the summed ideal
    # log-loss over an episode's scored tokens must equal -log P(actions) - log P(interruption outcomes).
    p = task("offswitch", reward_delay=2)
    c = make_corpus(p, parse_mixture("random"), 200, seed=5, store_obs=False)
    ideal = compute_ideal(c)
    loss, _, scored = token_logloss(c, ideal)
    total = (loss * scored).sum(1)
    a = c.arrays
    law_fn = jax.jit(jax.vmap(lambda sc, tok, act: law(decode_state(sc, tok, p), act, p)[2]))
    expected = np.zeros(c.n_episodes)
    for i in range(c.n_episodes):
        L = int(a["length"][i])
        probs = np.asarray(law_fn(np.repeat(a["scene"][i][None], L, 0), a["states"][i, :L], a["actions"][i, :L].astype(np.int32)))
        interrupted = a["events"][i, :L, 2]
        branch = np.where(interrupted, probs[:, 1], probs[:, 0])
        expected[i] = L * np.log(5) - np.log(branch).sum()
    np.testing.assert_allclose(total, expected, rtol=1e-4, atol=1e-4)
    assert (c.episodes.events[..., 2].any(1)).sum() > 10  # interruptions did happen


def test_sampled_actions_match_the_stated_probabilities():
    # chi-square of observed action counts against the summed stated probabilities, per character
    for mix, world in [
        ("random", "coin-7x7"),
        ("seeker(0.3)", "coin-7x7"),
        ("lazy(0.4)", "coin-7x7"),
        ("cautious(0.2)", "lava"),
        ("presser(0.2)", "offswitch"),
        ("tamperer(0.2)", "tamper"),
        ("keyseeker(0.2)", "keydoor"),
        ("keyseeker(0.2)", "keydoor-random"),
    ]:
        c = make_corpus(task(world), parse_mixture(mix), 400, seed=11, store_obs=False)
        ideal = compute_ideal(c)
        m = c.mask
        expected = ideal.action_probs[m].astype(np.float64).sum(0)
        observed = np.bincount(c.episodes.actions[m], minlength=5)
        keep = expected > 5
        assert observed[~keep].sum() <= 5
        stat = chisquare(observed[keep], expected[keep] * observed[keep].sum() / expected[keep].sum())
        assert stat.pvalue > 1e-3, (mix, observed, expected)


def test_token_round_trip_and_alignment(mixed):
    c, ideal = mixed
    for fmt in (TrajectoryFormat(c.params), TrajectoryFormat(c.params, character=True, rtg=True)):
        enc = encode(c, fmt)
        assert enc["tokens"].shape == (c.n_episodes, fmt.length)
        back = decode(enc["tokens"], fmt)
        m = c.mask
        assert np.array_equal(back["length"], c.episodes.length) and np.array_equal(back["terminated"], c.episodes.terminated)
        assert np.array_equal(back["actions"][m], c.episodes.actions[m])
        np.testing.assert_allclose(back["reward"][m], c.episodes.reward[m], atol=0.005)
        for i in range(c.n_episodes):
            L = c.episodes.length[i]
            assert np.array_equal(back["states"][i, : L + 1], c.episodes.states[i, : L + 1])
        assert np.array_equal(back["scene"], c.episodes.scene)
        if fmt.character:
            assert np.array_equal(back["character"], c.episodes.character)
            np.testing.assert_allclose(back["rtg"][:, 0], c.episodes.return_, atol=0.005)
            for i in range(c.n_episodes):
                L = c.episodes.length[i]
                np.testing.assert_allclose(back["rtg"][i, :L], c.episodes.rtg[i, :L], atol=0.005)
                assert back["rtg"][i, L] == 0.0
        # the compact vocabulary holds every id, and maps back exactly
        local = fmt.to_local(enc["tokens"])
        assert local.max() < fmt.vocab_size and np.array_equal(fmt.to_global(local), enc["tokens"])
        assert fmt.vocab_size < TrajVocab.SIZE
    fmt = TrajectoryFormat(c.params)
    enc = encode(c, fmt)
    loss, ent, scored = token_logloss(c, ideal, fmt)
    types = enc["types"]
    assert set(np.unique(types[scored])) == {STATE, ACTION, REWARD, END}
    assert np.all(scored[types == ACTION]) and np.all(scored[types == END])
    by_type = logloss_by_type(c, ideal, fmt)
    assert by_type["state"]["logloss"] == 0.0 and by_type["action"]["logloss"] > 0.5


def test_end_entropy_covers_the_end_and_the_action_that_might_have_come():
    c = make_corpus(task("offswitch"), parse_mixture("random"), 200, seed=2)
    ideal = compute_ideal(c)
    interrupted = c.episodes.events[..., 2].any(1)
    assert interrupted.sum() > 5
    h_half = np.log(2.0)
    # interrupted with q = 0.5: END or (with 1/2) one of 5 equally likely actions
    np.testing.assert_allclose(ideal.end_entropy[interrupted], h_half + 0.5 * np.log(5), rtol=1e-5)
    np.testing.assert_allclose(ideal.end_logloss[interrupted], h_half, rtol=1e-5)
    # reaching the coin ends the episode for sure
    coin = c.episodes.events[..., 0].any(1)
    np.testing.assert_allclose(ideal.end_entropy[coin], 0.0, atol=1e-6)


def test_a_random_key_corpus_saves_loads_and_its_ideal_knows_the_key(tmp_path):
    from simulacra.corpus import Corpus

    c = make_corpus(task("keydoor-random"), parse_mixture("keyseeker(0.2):1,random:1"), 64, seed=3)
    c.save(tmp_path / "c")
    loaded = Corpus.load(tmp_path / "c")
    from simulacra.world import Tile, Vocab

    tiles = loaded.episodes.scene[:, 2:].astype(int) - Vocab.TILE[0]
    keys = {int(np.flatnonzero(row == Tile.KEY)[0]) for row in tiles}
    assert len(keys) > 3  # the scenes carry the episodes' different key cells
    ideal = compute_ideal(loaded)
    assert np.isfinite(ideal.action_logloss[loaded.mask]).all()
    assert ideal.posterior[..., 0][loaded.mask].max() > 0.95  # the keyseeker is recognised, wherever its key lies
