"""The critics of H10 against hand computations and the exact ideal, the generalised fine-tuning
(one compiled program for every critic and discount), and what the leash holds."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from simulacra.text import default_grammar, make_text_corpus, parse_personas, text_ideal
from simulacra.text.critics import drift_report, law_arrays, law_logp, log_prior, next_word_probs, persona_prior
from simulacra.text.finetune import TextFinetuneConfig, _programs, finetune_text
from simulacra.text.model import fit_text
from simulacra.training.predict import PredictConfig
from tests.text.test_text_world import tiny_grammar


def _ids(grammar, *words):
    tables = grammar.compile()
    return np.array([[tables.words.index(w) for w in words]])


def test_the_truth_and_judge_critics_against_a_hand_computation():
    # tiny_grammar: at "s", x has logit friendly, y has logit sailor − 2·friendly·sailor; at "m"
    # (first sentence) <eod> has logit terse, z 0.3, w −0.7·formal.
    g = tiny_grammar()
    law = law_arrays(g)
    mix = parse_personas("friendly:1,sailor:1")
    words = _ids(g, "y", "<eod>")
    live = np.ones_like(words, bool)
    truth = np.asarray(law_logp(*law, words, live, log_prior(mix)))[0]
    e = math.e
    # P(y) = ½·1/(1+e) (friendly) + ½·e/(1+e) (sailor) = ½; then <eod> has probability 1/(2 + e^0.3) for both
    assert truth == pytest.approx([math.log(0.5), -math.log(2 + e**0.3)], abs=1e-6)
    judge = np.asarray(law_logp(*law, words, live, persona_prior("sailor")))[0]
    assert judge == pytest.approx([math.log(e / (1 + e)), -math.log(2 + e**0.3)], abs=1e-6)
    friendly = np.asarray(law_logp(*law, words, live, persona_prior("friendly")))[0]
    assert friendly == pytest.approx([math.log(1 / (1 + e)), -math.log(2 + e**0.3)], abs=1e-6)


def test_a_word_the_law_forbids_scores_the_floor_and_so_does_every_word_after_it():
    g = tiny_grammar()
    words = _ids(g, "x", "x", "z", "<eod>")  # x cannot follow x
    live = np.array([[True, True, True, False]])
    r = np.asarray(law_logp(*law_arrays(g), words, live, log_prior(parse_personas("all")), floor=-7.0))[0]
    assert math.isfinite(r[0]) and r[0] < 0
    assert r[1:3].tolist() == [-7.0, -7.0]
    assert r[3] == 0.0  # padding


def test_the_truth_critic_is_the_ideal_predictor_on_real_documents():
    g = default_grammar()
    mix = parse_personas("friendly+sailor:1,sailor:2,formal:1")
    corpus = make_text_corpus(g, mix, 64, seed=3)
    live = corpus.words != -1
    ideal = text_ideal(corpus)
    r = np.asarray(law_logp(*law_arrays(g), np.where(live, corpus.words, 0), live, log_prior(mix)))
    np.testing.assert_allclose(r[live], ideal.logp[live], atol=1e-5)
    p = next_word_probs(g, mix, corpus)
    np.testing.assert_allclose(p.sum(-1)[live], 1.0, atol=1e-9)
    # the next-word distribution gives each real word the ideal's probability of it
    got = np.take_along_axis(p, np.where(live, corpus.words, 0)[..., None].astype(np.int64), -1)[..., 0]
    np.testing.assert_allclose(np.log(got[live]), ideal.logp[live], atol=1e-9)


@pytest.fixture(scope="module")
def pretrained():
    g = default_grammar()
    mix = parse_personas("all")
    train = make_text_corpus(g, mix, 600, seed=0)
    held = make_text_corpus(g, mix, 96, seed=1)
    sim = fit_text(train, PredictConfig(steps=120, d_model=32, d_mlp=64, batch_size=32, warmup=10), [0], progress=False)[0]
    return sim, held


def test_a_strong_leash_with_the_myopic_ground_truth_critic_leaves_the_simulator_where_it_was(pretrained):
    sim, held = pretrained
    leashed = TextFinetuneConfig(critic="truth", gamma=0.0, beta=10.0, updates=6, documents=32)
    free = TextFinetuneConfig(critic="self", gamma=1.0, beta=0.0, updates=6, documents=32)
    drift = {}
    for name, cfg in (("leashed", leashed), ("free", free)):
        tuned, curve = finetune_text(sim, cfg, jax.random.PRNGKey(5), progress=False)
        assert np.isfinite(curve["critic"]).all() and np.isfinite(curve["kl"]).all()
        drift[name] = drift_report(sim, tuned, held, cfg, jax.random.PRNGKey(6), n_documents=64)
    # held at the pretrained model: its drift is a small fraction of the unleashed far-sighted run's
    assert abs(drift["leashed"]["drift"]) < 0.02, drift["leashed"]
    assert drift["free"]["drift"] > 5 * abs(drift["leashed"]["drift"]), (drift["free"]["drift"], drift["leashed"]["drift"])
    # the far-sighted self critic writes shorter documents (a sum of log-probabilities pays for ending early)
    assert drift["free"]["length_after"] < drift["free"]["length_before"]


def test_one_compiled_program_serves_every_critic_discount_and_leash(pretrained):
    sim, _ = pretrained
    _programs.cache_clear()
    for critic, gamma, beta in (("truth", 0.0, 0.0), ("self", 0.5, 1.0), ("judge", 1.0, 0.1)):
        finetune_text(sim, TextFinetuneConfig(critic=critic, gamma=gamma, beta=beta, updates=1, documents=16), jax.random.PRNGKey(0), progress=False)
    assert _programs.cache_info().misses == 1 and _programs.cache_info().hits == 2
    rollout, learn, _ = _programs(sim.model.config, sim.fmt.prefix_len, sim.fmt.length, 16, 2, 2, 0.2, 1e-4, 1.0)
    assert rollout._cache_size() == 1 and learn._cache_size() == 1


def test_the_swear_critic_is_the_old_fine_tuning(pretrained):
    import jax.numpy as jnp

    from simulacra.text.critics import law_arrays, log_prior, persona_prior
    from simulacra.text.finetune import _mixture_of, _swear_ids
    from simulacra.text.model import PAD
    from simulacra.training.finetune import _advantages

    sim, _ = pretrained
    cfg = TextFinetuneConfig(penalty=2.5, documents=16)
    assert cfg.critic == "swear" and cfg.gamma == 1.0 and cfg.weights().tolist() == [2.5, 0.0, 0.0, 0.0, 0.0]
    fmt = sim.fmt
    rollout, _, _ = _programs(sim.model.config, fmt.prefix_len, fmt.length, 16, 2, 2, 0.2, 1e-4, 1.0)
    swear = jnp.asarray(_swear_ids(sim))
    one = jax.tree.map(lambda x: jnp.asarray(x)[None], sim.params)  # the programs are vmapped over seeds: a batch of one
    out = rollout(one, one, jax.random.PRNGKey(4)[None], law_arrays(fmt.grammar), swear, jnp.asarray(log_prior(_mixture_of(sim))),
                  jnp.asarray(persona_prior(cfg.judge)), jnp.asarray(cfg.weights()), jnp.float32(cfg.gamma), jnp.float32(cfg.floor))  # fmt: skip
    tokens, mask, _, critic, _, _, adv = (x[0] for x in out)
    # the reward and advantages the fine-tuning had before critics: −penalty per swear word, undiscounted
    words = tokens[:, fmt.prefix_len :]
    old_reward = -cfg.penalty * jnp.isin(words, swear).astype(jnp.float32) * (words != PAD)
    assert bool(jnp.isin(words, swear).any())  # the check has something to check
    np.testing.assert_array_equal(np.asarray(critic), np.asarray(old_reward))
    np.testing.assert_array_equal(np.asarray(adv), np.asarray(_advantages(old_reward, mask, 1.0)))


def test_the_first_word_shift_by_hand():
    from simulacra.text.critics import first_word_shift

    before, after = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])  # mass moved from word 0 to word 2
    first = np.array([0, 0, 1, 2])  # the pretrained model's documents began with these words
    future = np.array([-4.0, -6.0, -3.0, -1.0])  # the critic's grade of the rest of each
    # F = (−5, −3, −1), mean −3.5: Σ Δπ (F − mean) = −0.3 · (−1.5) + 0.3 · 2.5 = 1.2
    shift, immediate = first_word_shift(before, after, first, future, np.array([-1.0, -2.0, -3.0]))
    assert shift == pytest.approx(1.2) and immediate == pytest.approx(-0.3 * -1.0 + 0.3 * -3.0)
    # a word none of the documents began with counts at the mean: no contribution
    shift, _ = first_word_shift(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.0, 0.5]), np.array([0, 0, 1]), np.array([-1.0, -3.0, -8.0]), np.zeros(3))
    assert shift == pytest.approx(-0.5 * (-8.0 - -4.0))


def test_an_unchanged_model_drifts_nowhere(pretrained):
    sim, held = pretrained
    r = drift_report(sim, sim, held, TextFinetuneConfig(critic="judge"), jax.random.PRNGKey(2), n_documents=32)
    assert r["drift"] == 0.0 and r["early_shift"] == 0.0 and r["early_immediate"] == 0.0
    for m in ("persona_tv", "dream_entropy", "critic", "length", "dream_valid"):
        assert r[f"{m}_before"] == r[f"{m}_after"], m
    assert r["first_kl"] > 0 and 0 <= r["persona_tv_after"] <= 1


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("critic", "oracle", "unknown critic; known: truth, self, judge, swear"),
        ("gamma", 1.5, "a discount must be in [0, 1]"),
        ("gamma", -0.1, "a discount must be in [0, 1]"),
        ("approval", -1.0, "must be a finite weight >= 0"),
        ("judge", "pirate", "unknown trait 'pirate'"),
        ("floor", 0.0, "must be a finite negative score"),
    ],
)
def test_bad_critic_configs_are_one_clear_error(field, value, words):
    with pytest.raises(ValueError, match="invalid TextFinetuneConfig." + field) as e:
        TextFinetuneConfig(**{field: value})
    assert words in str(e.value)
