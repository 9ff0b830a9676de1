"""Conditioning lenses: a faithful renderer of characters matches on the diagonal; the return
sweep reads curves correctly."""

from types import SimpleNamespace

import jax
import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.corpus.ideal import compute_ideal
from simulacra.lenses import conditioning
from simulacra.training.predict import PredictConfig, fit
from simulacra.world import task

WORLD = task("coin-7x7", horizon=12)
MIX = parse_mixture("seeker(0.1):0.4,random:0.3,lazy(0.2):0.3")


class Fmt:
    character = True
    params = WORLD


class Renderer:
    """Acts as a perfect character-conditioned simulator: the prompted character's own episodes,
    with its exact policy as the model's action distribution."""

    fmt = Fmt()
    card = {"corpus": {"mixture": MIX.to_list()}}

    def act(self, key, n, target=None, character=None, temperature=1.0, world=None):
        mix = parse_mixture(MIX.names[character])
        c = make_corpus(WORLD, mix, n, seed=character)
        return c.episodes.replace(action_probs=compute_ideal(c).action_probs)


def test_a_faithful_renderer_matches_every_character():
    out = conditioning.character_match(Renderer(), jax.random.PRNGKey(0), n_episodes=64)
    kl = np.array(out["kl"])
    assert out["characters"] == list(MIX.names) and kl.shape == (3, 3)
    np.testing.assert_allclose(np.diag(kl), 0.0, atol=1e-5)
    assert np.all(kl[~np.eye(3, dtype=bool)] > 0.05) and out["matches"]


class Curve:
    """Achieves `f(target)` plus noise."""

    def __init__(self, f):
        self.f = f

    def act(self, key, n, target=None, character=None, temperature=1.0, world=None):
        rng = np.random.default_rng(int(target * 100) + 7)
        ret = self.f(target) + rng.normal(0, 0.05, n)
        # the fields of `Episodes` that return_sweep reads
        return SimpleNamespace(return_=ret, true_return=ret, optimal_return=np.ones(n), events=np.zeros((n, 5, 7), bool), length=np.full(n, 5))


def test_return_sweep_reads_monotone_and_falling_curves():
    up = conditioning.return_sweep(Curve(lambda g: min(g, 1.0)), [0.0, 0.5, 1.0, 1.5], None, n_episodes=200)
    assert up["monotone"] and up["spearman"] > 0.8 and [r["target"] for r in up["rows"]] == [0.0, 0.5, 1.0, 1.5]
    lo, hi = up["rows"][1]["return_ci"]
    assert lo < 0.5 < hi
    down = conditioning.return_sweep(Curve(lambda g: 1.0 - g), [0.0, 0.5, 1.0], None, n_episodes=200)
    assert not down["monotone"] and down["spearman"] < -0.8
    with pytest.raises(ValueError, match="at least one target"):
        conditioning.return_sweep(Curve(lambda g: g), [], None)


def test_lenses_run_on_a_trained_conditioned_model():
    corpus = make_corpus(WORLD, parse_mixture("seeker(0.1):0.5,random:0.5"), 64, seed=0)
    cfg = PredictConfig(rtg=True, character=True, steps=5, batch_size=8, d_model=32, n_layers=1, n_heads=2, d_mlp=64, warmup=1)
    sim = fit(corpus, cfg, progress=False)
    sweep = conditioning.return_sweep(sim, [0.0, 1.0], jax.random.PRNGKey(0), n_episodes=16, character=0)
    assert len(sweep["rows"]) == 2 and all(0 <= r["success"] <= 1 for r in sweep["rows"])
    match = conditioning.character_match(sim, jax.random.PRNGKey(0), n_episodes=16, target=1.0)
    assert np.all(np.array(match["kl"]) >= 0)
    plain = fit(corpus, PredictConfig(steps=1, warmup=0, d_model=32, n_layers=1, n_heads=2, d_mlp=64), progress=False)
    with pytest.raises(ValueError, match="character slot"):
        conditioning.character_match(plain, jax.random.PRNGKey(0))
