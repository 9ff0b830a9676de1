"""Checkpoints: save -> load gives the same model; bad checkpoints fail clearly."""

import json

import jax
import numpy as np
import pytest

from simulacra.nets import Transformer, TransformerConfig
from simulacra.model.checkpoint import CheckpointError, load_model, save_model

CFG = TransformerConfig(vocab_size=40, context=12, d_model=16, n_layers=2, n_heads=2, d_mlp=32)
TOKENS = jax.random.randint(jax.random.PRNGKey(3), (2, 10), 0, 40)


@pytest.fixture()
def saved(tmp_path):
    params = Transformer(CFG).init(jax.random.PRNGKey(0), TOKENS)
    path = save_model(tmp_path / "m", params, CFG, card={"process": {"name": "predict"}, "metrics": {"loss": 1.5}})
    return path, params


def test_save_then_load_gives_identical_outputs(saved):
    path, params = saved
    loaded, cfg, card = load_model(path)
    assert cfg == CFG and card["process"]["name"] == "predict" and card["metrics"]["loss"] == 1.5
    a, _ = Transformer(CFG).apply(params, TOKENS)
    b, _ = Transformer(cfg).apply(loaded, TOKENS)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_different_architecture_fails_with_a_clear_error(saved):
    path, _ = saved
    card = json.loads((path / "card.json").read_text())
    card["architecture"]["d_mlp"] = 64
    (path / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"do not fit the card's architecture: parameter .*mlp_in.* has shape"):
        load_model(path)
    card["architecture"]["d_mlp"] = 32
    card["architecture"]["n_layers"] = 3
    (path / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="block_2.* is missing"):
        load_model(path)


def test_corruption_and_overwrites(saved, tmp_path):
    path, params = saved
    blob = bytearray((path / "params.msgpack").read_bytes())
    blob[-3] ^= 0xFF
    (path / "params.msgpack").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_model(path)
    with pytest.raises(CheckpointError, match="already exists"):
        save_model(path, params, CFG)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "card.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a simulacra checkpoint"):
        save_model(other, params, CFG, overwrite=True)
    with pytest.raises(CheckpointError, match="no card.json"):
        load_model(tmp_path)


def test_a_card_copied_from_a_loaded_checkpoint_does_not_carry_its_hash(saved, tmp_path):
    """Saving changed weights with the card of the checkpoint they were loaded from (as fine-tuning
    does) writes the new weights' hash, not the old one's: the new checkpoint loads."""
    path, _ = saved
    params, config, card = load_model(path)
    changed = jax.tree.map(lambda x: x + 1.0, params)
    save_model(tmp_path / "changed", changed, config, card)
    back, _, back_card = load_model(tmp_path / "changed")
    assert back_card["params_sha256"] != card["params_sha256"]
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(changed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
