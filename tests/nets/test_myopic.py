"""Myopic descent (`Transformer(..., myopic=True)`, #16): it changes gradients and nothing else.

The forward pass is the ordinary one value for value, so the loss on a batch is equal. In the
gradient, the loss at a position cannot reach the computation of earlier positions: shown on a
2-token sequence, where token 0 reaches position 1 only through position 0's keys and values, so
the myopic gradient of position 1's loss with respect to token 0's embedding row (and position
0's embedding) is exactly zero, while the ordinary one is not; and the loss at position 0, which
attends to nothing else, has the same gradient either way."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulacra.nets import Transformer, TransformerConfig
from simulacra.nets.transformer import ATTN_CHUNK_MIN, ATTN_CHUNKS, KVCache

CFG = TransformerConfig(vocab_size=11, context=160, d_model=16, n_layers=2, n_heads=2, d_mlp=32)
MODEL = Transformer(CFG)
PARAMS = MODEL.init(jax.random.PRNGKey(0), jnp.zeros((1, 2), jnp.int32))
A, B = 3, 7  # the two tokens, distinct so their embedding rows are distinct parameters


def nll(params, tokens, position, myopic):
    """Mean over the batch of −log p(target at `position`), target = (token + 1) mod V."""
    logits, _ = MODEL.apply(params, tokens, myopic=myopic)
    logp = jax.nn.log_softmax(logits[:, position])
    return -jnp.mean(jnp.take_along_axis(logp, ((tokens[:, position] + 1) % CFG.vocab_size)[:, None], 1))


def grads(tokens, position, myopic):
    return jax.grad(nll)(PARAMS, tokens, position, myopic)["params"]


def test_the_forward_pass_and_the_loss_are_unchanged():
    tokens = jax.random.randint(jax.random.PRNGKey(1), (4, 40), 0, CFG.vocab_size)
    plain, _ = MODEL.apply(PARAMS, tokens)
    myopic, _ = MODEL.apply(PARAMS, tokens, myopic=True)
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(myopic))
    assert float(nll(PARAMS, tokens, 39, False)) == float(nll(PARAMS, tokens, 39, True))


def test_two_tokens_by_hand():
    tokens = jnp.array([[A, B]])
    # position 1's loss: token A and position 0 reach it only through position 0's key and value
    ordinary, myopic = grads(tokens, 1, False), grads(tokens, 1, True)
    assert np.abs(np.asarray(ordinary["embed"]["embedding"][A])).max() > 1e-6
    assert np.abs(np.asarray(ordinary["pos_embed"][0])).max() > 1e-6
    np.testing.assert_array_equal(np.asarray(myopic["embed"]["embedding"][A]), 0.0)
    np.testing.assert_array_equal(np.asarray(myopic["pos_embed"][0]), 0.0)
    # ... while position 1's own token and position still get their gradient, the same either way:
    # the path through its own key and value is kept (the weights' gradients are not, they differ)
    np.testing.assert_allclose(myopic["embed"]["embedding"][B], ordinary["embed"]["embedding"][B], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(myopic["pos_embed"][1], ordinary["pos_embed"][1], rtol=1e-5, atol=1e-7)
    w = "block_0", "attn", "qkv", "kernel"
    assert not np.allclose(np.asarray(myopic[w[0]][w[1]][w[2]][w[3]]), np.asarray(ordinary[w[0]][w[1]][w[2]][w[3]]))
    # position 0's loss attends to nothing earlier: the same gradient everywhere
    for x, y in zip(jax.tree.leaves(grads(tokens, 0, True)), jax.tree.leaves(grads(tokens, 0, False))):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def test_long_sequences_take_the_chunked_path_and_stay_myopic():
    t = ATTN_CHUNK_MIN * ATTN_CHUNKS + 8  # long enough for the chunked attention
    tokens = jnp.concatenate([jnp.full((1, t - 1), A), jnp.full((1, 1), B)], axis=1)
    plain, _ = MODEL.apply(PARAMS, tokens)
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(MODEL.apply(PARAMS, tokens, myopic=True)[0]))
    g = grads(tokens, t - 1, True)  # the last position's loss reaches no earlier position
    np.testing.assert_array_equal(np.asarray(g["embed"]["embedding"][A]), 0.0)
    np.testing.assert_array_equal(np.asarray(g["pos_embed"][: t - 1]), 0.0)
    assert np.abs(np.asarray(grads(tokens, t - 1, False)["embed"]["embedding"][A])).max() > 1e-6


def test_myopic_with_a_key_value_cache_is_refused():
    with pytest.raises(ValueError, match="myopic=True is a training option"):
        MODEL.apply(PARAMS, jnp.array([[A]]), kv=KVCache.empty(CFG, 1), myopic=True)
