"""Multi-token prediction (`TransformerConfig.future_heads`, #16): with one head the model is the
ordinary one; with n heads, head 1 is that same model (bit for bit, on the same parameters) and
each further head reads the trunk and predicts further ahead."""

import dataclasses

import jax
import numpy as np
import pytest

from simulacra.nets import Hooks, Transformer, TransformerConfig
from simulacra.nets.transformer import KVCache

CFG = TransformerConfig(vocab_size=13, context=24, d_model=16, n_layers=2, n_heads=2, d_mlp=32)
TOKENS = jax.random.randint(jax.random.PRNGKey(1), (3, 20), 0, 13)


def test_one_head_is_the_ordinary_model_and_head_one_is_it_too():
    plain = Transformer(CFG)
    params = plain.init(jax.random.PRNGKey(0), TOKENS)
    assert Transformer(dataclasses.replace(CFG, future_heads=1)).init(jax.random.PRNGKey(0), TOKENS) is not None
    four = Transformer(dataclasses.replace(CFG, future_heads=4))
    params4 = four.init(jax.random.PRNGKey(0), TOKENS)
    assert set(params4["params"]) == set(params["params"]) | {"head_2", "head_3", "head_4"}
    # the shared parameters drawn as the ordinary model's: head 1 is the ordinary model, bit for bit
    for name in params["params"]:
        for a, b in zip(jax.tree.leaves(params["params"][name]), jax.tree.leaves(params4["params"][name])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    ordinary, _ = plain.apply(params, TOKENS)
    head1, _ = four.apply(params4, TOKENS)
    every, cache = four.apply(params4, TOKENS, hooks=Hooks(names=("heads.2.hook_resid_post",)), future=True)
    np.testing.assert_array_equal(np.asarray(head1), np.asarray(ordinary))
    np.testing.assert_array_equal(np.asarray(every[:, :, 0]), np.asarray(ordinary))
    assert every.shape == (3, 20, 4, 13) and cache["heads.2.hook_resid_post"].shape == (3, 20, 16)
    assert not np.allclose(np.asarray(every[:, :, 1]), np.asarray(every[:, :, 0]))
    # acting with a cache uses head 1 only, piece by piece as whole
    logits, _, _ = four.apply(params4, TOKENS[:, :5], kv=KVCache.empty(four.config, 3))
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ordinary[:, :5]), rtol=1e-5, atol=1e-6)


def test_heads_are_causal():
    four = Transformer(dataclasses.replace(CFG, future_heads=3))
    params = four.init(jax.random.PRNGKey(0), TOKENS)
    every, _ = four.apply(params, TOKENS, future=True)
    changed = TOKENS.at[:, 10].set((TOKENS[:, 10] + 1) % 13)
    again, _ = four.apply(params, changed, future=True)
    np.testing.assert_array_equal(np.asarray(every[:, :10]), np.asarray(again[:, :10]))


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_bad_head_counts_are_refused(n):
    with pytest.raises(ValueError, match="future_heads"):
        dataclasses.replace(CFG, future_heads=n)


def test_future_with_a_cache_is_refused():
    four = Transformer(dataclasses.replace(CFG, future_heads=2))
    params = four.init(jax.random.PRNGKey(0), TOKENS)
    with pytest.raises(ValueError, match="future=True"):
        four.apply(params, TOKENS[:, :1], kv=KVCache.empty(four.config, 3), future=True)
