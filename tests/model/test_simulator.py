"""Acting and dreaming with a trained model: the cached, batched loops agree with the model run
on whole sequences; checkpoints round-trip; prompts are checked."""

import jax
import numpy as np
import pytest

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.corpus.tokens import TrajectoryFormat, is_end_token, is_reward_token, token_reward
from simulacra.model import Simulator
from simulacra.model.checkpoint import CheckpointError
from simulacra.training.predict import PredictConfig, fit
from simulacra.world import Vocab, is_valid, task

WORLD = task("coin-7x7", horizon=10)
CFG = dict(steps=30, batch_size=8, d_model=32, n_layers=1, n_heads=2, d_mlp=64, lr=3e-3, warmup=5)


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(WORLD, parse_mixture("seeker(0.1):0.5,random:0.5"), 64, seed=0)


@pytest.fixture(scope="module")
def dt(corpus):
    return fit(corpus, PredictConfig(rtg=True, character=True, **CFG), seed=0, progress=False)


@pytest.fixture(scope="module")
def sim(corpus):
    return fit(corpus, PredictConfig(**CFG), seed=0, progress=False)


def _rows(out, fmt: TrajectoryFormat, target=None, character=None):
    """The acted episodes as token rows of the format (what the model saw)."""
    n, horizon = out.actions.shape
    episodes = out.replace(rtg=np.cumsum(out.reward[:, ::-1], axis=1)[:, ::-1], character=np.full(n, character or 0, np.int8))
    from simulacra.corpus import Corpus
    from simulacra.corpus.tokens import encode

    enc = encode(Corpus(fmt.params, parse_mixture("random"), 0, episodes), fmt)
    if fmt.rtg:  # acting decrements the target, it does not know the future
        for t in range(horizon + 1):
            enc["tokens"][:, fmt.rtg_pos(t)] = fmt.rtg_token(target - out.reward[:, :t].sum(1))
        enc["tokens"][~enc["mask"]] = Vocab.PAD
    return enc


def test_acting_with_a_kv_cache_matches_the_model_on_whole_sequences(dt):
    out = dt.act(jax.random.PRNGKey(0), 16, target=1.0, character=1)
    fmt = dt.fmt
    enc = _rows(out, fmt, target=1.0, character=1)
    assert np.array_equal(out.tokens, enc["tokens"])  # the row acting returns is the format's
    logits, _ = dt.model.apply(dt.params, fmt.to_local(out.tokens))
    ids = fmt.local_ids(*Vocab.ACTION)
    for i in range(16):
        for t in range(int(out.length[i])):
            full = jax.nn.softmax(logits[i, fmt.action_pos(t) - 1, ids])
            np.testing.assert_allclose(out.action_probs[i, t], full, rtol=2e-4, atol=2e-5)


def test_acted_episodes_follow_the_world(sim):
    out = sim.act(jax.random.PRNGKey(1), 32)
    n, horizon = out.actions.shape
    assert out.states.shape == (n, horizon + 1, sim.fmt.state_len)
    assert np.all((out.length >= 1) & (out.length <= horizon))
    np.testing.assert_allclose(out.return_, (out.reward * out.mask).sum(1))
    assert np.all(out.return_ <= out.optimal_return + 1e-6)
    valid = jax.vmap(lambda sc, st: is_valid(sc, st, WORLD))(out.scene, out.states[:, 0])
    assert np.all(np.asarray(valid))
    np.testing.assert_allclose(out.action_probs.sum(-1), 1.0, rtol=1e-5)
    # temperature 0 is greedy: the chosen action is the most likely one
    greedy = sim.act(jax.random.PRNGKey(1), 32, temperature=0.0)
    live = greedy.mask
    assert np.all(greedy.actions[live] == greedy.action_probs.argmax(-1)[live])


def test_dreams_are_whole_token_rows_from_a_world_prompt(sim):
    d = sim.dream(jax.random.PRNGKey(2), 16)
    fmt = sim.fmt
    tokens = d["tokens"]
    assert tokens.shape == (16, fmt.length)
    assert np.array_equal(tokens[:, 1 : 1 + len(d["scene"][0])], d["scene"])
    is_end = is_end_token(tokens)
    ended = is_end.any(1)
    first = np.argmax(is_end, axis=1)
    for i in np.nonzero(ended)[0]:
        assert np.all(tokens[i, first[i] + 1 :] == Vocab.PAD)
    # the same key gives the same dream; a new key another
    assert np.array_equal(sim.dream(jax.random.PRNGKey(2), 16)["tokens"], tokens)
    assert not np.array_equal(sim.dream(jax.random.PRNGKey(3), 16)["tokens"], tokens)


def test_dream_fills_return_to_go_from_the_target_and_dreamed_rewards(dt):
    d = dt.dream(jax.random.PRNGKey(4), 8, target=0.5, character=0, temperature=0.0)
    fmt = dt.fmt
    tokens = d["tokens"]
    assert np.all(tokens[:, fmt.rtg_pos(0)] == fmt.rtg_token(0.5))
    reward_ok = is_reward_token(tokens[:, fmt.reward_pos(0)])
    r0 = token_reward(tokens[:, fmt.reward_pos(0)])
    g1 = tokens[:, fmt.rtg_pos(1)]
    ok = reward_ok & (g1 != Vocab.PAD)
    assert np.all(g1[ok] == fmt.rtg_token(0.5 - r0[ok]))


def test_save_then_load_acts_identically(sim, tmp_path):
    sim.save(tmp_path / "m")
    back = Simulator.load(tmp_path / "m")
    assert back.spec == sim.spec and back.fmt == sim.fmt and back.card["corpus"] == sim.card["corpus"]
    a = sim.act(jax.random.PRNGKey(5), 8)
    b = back.act(jax.random.PRNGKey(5), 8)
    for k in ("actions", "action_probs", "states"):
        assert np.array_equal(getattr(a, k), getattr(b, k))


def test_a_card_written_before_the_model_spec_loads(sim, tmp_path):
    """Cards of earlier versions stored the whole training config as "predict_config"."""
    import dataclasses
    import json

    path = sim.save(tmp_path / "old")
    card = json.loads((path / "card.json").read_text())
    spec = card.pop("model_spec")
    card["predict_config"] = {**spec, "loss_on": "trajectory", "steps": 30, "batch_size": 8, "lr": 3e-3, "warmup": 5, "weight_decay": 0.01}
    (path / "card.json").write_text(json.dumps(card))
    back = Simulator.load(path)
    assert back.spec == sim.spec and dataclasses.asdict(back.spec) == spec
    assert "predict_config" not in json.loads((back.save(tmp_path / "new") / "card.json").read_text())


def test_prompts_are_checked(sim, dt):
    with pytest.raises(ValueError, match="give a target return"):
        dt.act(jax.random.PRNGKey(0), 2, character=0)
    with pytest.raises(ValueError, match="no return-to-go"):
        sim.act(jax.random.PRNGKey(0), 2, target=1.0)
    with pytest.raises(ValueError, match="unknown character 'hero'"):
        dt.act(jax.random.PRNGKey(0), 2, target=1.0, character="hero")
    assert dt.characters == ("seeker(0.1)", "random")
    with pytest.raises(ValueError, match="does not fit this model's token format"):
        sim.act(jax.random.PRNGKey(0), 2, world=task("coin-9x9"))


def test_a_training_checkpoint_that_is_not_a_simulator_is_refused(sim, tmp_path):
    from simulacra.model.checkpoint import save_model

    save_model(tmp_path / "bare", sim.params, sim.model.config, {"process": {"name": "reinforce"}})
    with pytest.raises(CheckpointError, match="does not describe a simulator"):
        Simulator.load(tmp_path / "bare")
