"""The transformer: causal, with complete, stable and patchable activation names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simulacra.nets import Hooks, Transformer, TransformerConfig, activation_names

CFG = TransformerConfig(vocab_size=50, context=16, d_model=32, n_layers=2, n_heads=4, d_mlp=64)
MODEL = Transformer(CFG)
TOKENS = jax.random.randint(jax.random.PRNGKey(1), (3, 12), 0, 50)
PARAMS = MODEL.init(jax.random.PRNGKey(0), TOKENS)


@jax.jit
def run(params, tokens, hooks=None):
    return MODEL.apply(params, tokens, hooks=hooks)


def test_changing_a_future_token_never_changes_an_earlier_logit():
    logits, _ = run(PARAMS, TOKENS)
    for t in range(TOKENS.shape[1]):
        changed = TOKENS.at[:, t].set((TOKENS[:, t] + 7) % 50)
        new, _ = run(PARAMS, changed)
        np.testing.assert_array_equal(np.asarray(new[:, :t]), np.asarray(logits[:, :t]))
        assert not np.allclose(new[:, t], logits[:, t])


def test_activation_names_are_complete_and_stable():
    _, cache = MODEL.apply(PARAMS, TOKENS, hooks=Hooks(names="all"))
    assert tuple(cache) == activation_names(CFG)  # every name, in computation order
    assert activation_names(CFG)[:4] == ("hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_normalized")
    assert cache["blocks.1.attn.hook_pattern"].shape == (3, 4, 12, 12)
    assert cache["blocks.0.attn.hook_z"].shape == (3, 12, 4, 8)
    assert cache["blocks.0.mlp.hook_post"].shape == (3, 12, 64)
    np.testing.assert_allclose(np.asarray(cache["blocks.1.attn.hook_pattern"]).sum(-1), 1.0, rtol=1e-5)
    # the residual stream adds up as the names say
    np.testing.assert_allclose(
        cache["blocks.0.hook_resid_post"], cache["blocks.0.hook_resid_mid"] + cache["blocks.0.hook_mlp_out"], rtol=1e-6
    )
    _, some = run(PARAMS, TOKENS, Hooks(names=("blocks.1.hook_resid_post",)))
    assert list(some) == ["blocks.1.hook_resid_post"]
    # different compiled programs may round differently in the last bits
    np.testing.assert_allclose(some["blocks.1.hook_resid_post"], cache["blocks.1.hook_resid_post"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["hook_embed", "blocks.0.hook_resid_post", "blocks.1.attn.hook_z", "blocks.1.mlp.hook_post", "ln_final.hook_normalized"])
def test_adding_zero_is_a_no_op_and_adding_something_is_not(name):
    base, cache = run(PARAMS, TOKENS, Hooks(names=(name,)))
    zero, _ = run(PARAMS, TOKENS, Hooks(add={name: jnp.zeros_like(cache[name])}))
    # equal up to the last bits: a program with the addition may fuse (and round) differently
    np.testing.assert_allclose(np.asarray(zero), np.asarray(base), rtol=1e-5, atol=1e-5)
    bumped, after = run(PARAMS, TOKENS, Hooks(names=(name,), add={name: jnp.ones_like(cache[name])}))
    assert not np.allclose(bumped, base)
    np.testing.assert_allclose(after[name], cache[name] + 1, rtol=1e-6)
    same, _ = run(PARAMS, TOKENS, Hooks(replace={name: cache[name]}))
    np.testing.assert_allclose(np.asarray(same), np.asarray(base), rtol=1e-5, atol=1e-5)


def test_config_and_input_errors_are_clear():
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        TransformerConfig(vocab_size=10, context=8, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="TransformerConfig.n_layers"):
        TransformerConfig(vocab_size=10, context=8, n_layers=0)
    with pytest.raises(ValueError, match="longer than the context 16"):
        MODEL.apply(PARAMS, jnp.zeros((1, 17), jnp.int32))


def test_vmapped_over_parameters():
    params = jax.vmap(lambda k: MODEL.init(k, TOKENS))(jax.random.split(jax.random.PRNGKey(5), 2))
    both, _ = jax.vmap(lambda p: MODEL.apply(p, TOKENS))(params)
    one, _ = MODEL.apply(jax.tree.map(lambda x: x[1], params), TOKENS)
    np.testing.assert_allclose(both[1], one, rtol=1e-5, atol=1e-6)


def test_feeding_in_pieces_with_a_kv_cache_equals_feeding_whole():
    from simulacra.nets import KVCache

    whole, _ = run(PARAMS, TOKENS)
    step = jax.jit(lambda p, t, kv: MODEL.apply(p, t, kv=kv))
    kv = KVCache.empty(CFG, TOKENS.shape[0])
    pieces = []
    for lo, hi in ((0, 5), (5, 6), (6, 12)):  # uneven pieces, one of a single token
        logits, _, kv = step(PARAMS, TOKENS[:, lo:hi], kv)
        pieces.append(logits)
    assert int(kv.index) == 12
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, rtol=1e-5, atol=1e-5)
    # hooks act in cached mode too: adding to the residual stream changes the next logits
    h = Hooks(add={"blocks.0.hook_resid_post": jnp.ones(CFG.d_model)})
    kv0 = KVCache.empty(CFG, TOKENS.shape[0])
    a, _, _ = MODEL.apply(PARAMS, TOKENS[:, :5], kv=kv0)
    b, _, _ = MODEL.apply(PARAMS, TOKENS[:, :5], hooks=h, kv=kv0)
    assert not np.allclose(a, b)


def test_chunked_attention_equals_the_full_masked_square():
    from simulacra.nets import transformer as tr

    cfg = TransformerConfig(vocab_size=50, context=200, d_model=32, n_layers=2, n_heads=4, d_mlp=64)
    model = Transformer(cfg)
    tokens = jax.random.randint(jax.random.PRNGKey(2), (2, 200), 0, 50)
    params = model.init(jax.random.PRNGKey(0), tokens)
    chunked, _ = model.apply(params, tokens)  # long enough: the chunked path
    # asking for the pattern takes the full path, which must agree
    full, cache = model.apply(params, tokens, hooks=Hooks(names=("blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern")))
    assert cache["blocks.0.attn.hook_pattern"].shape == (2, 4, 200, 200)
    np.testing.assert_allclose(chunked, full, rtol=1e-5, atol=1e-5)
    q, k, v = (jax.random.normal(jax.random.PRNGKey(i), (2, 37, 2, 8)) for i in range(3))
    ref = jax.nn.softmax(jnp.where(jnp.tril(jnp.ones((37, 37), bool)), jnp.einsum("bqhd,bkhd->bhqk", q, k) / 2.0, -1e30), -1)
    np.testing.assert_allclose(tr._chunked_attention(q, k, v, 2.0, 4), jnp.einsum("bhqk,bkhd->bqhd", ref, v), rtol=1e-5, atol=1e-6)


def test_grid_embedding_ties_cell_tokens_to_scene_positions():
    """A CELL token and the scene tile of the same cell get the same grid vector, and the scene's
    tiles no learned position vector; pieces with a KV cache still equal the whole; the config survives a JSON round trip (a model card)."""
    import dataclasses
    import json

    from simulacra.corpus.tokens import TrajectoryFormat
    from simulacra.nets import KVCache
    from simulacra.training.predict import PredictConfig
    from simulacra.world import Vocab, task

    world = task("coin-7x7")
    fmt = TrajectoryFormat(world, rtg=True)
    cfg = PredictConfig(d_model=32, d_mlp=64, grid=True).transformer(fmt)
    assert cfg.grid_side == 15 and len(cfg.grid_tokens) == fmt.vocab_size and len(cfg.grid_positions) == fmt.length
    assert "hook_grid_embed" in activation_names(cfg) and "hook_grid_embed" not in activation_names(CFG)
    again = TransformerConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert again == cfg and hash(again) == hash(cfg)

    r, c = 2, 5
    cell_id = int(fmt.to_local(Vocab.CELL[0] + r * 15 + c))
    scene_pos = 3 + r * world.width + c  # BOS, NUM h, NUM w, then the tiles row by row
    after_scene = 3 + world.height * world.width + 2
    tokens = jnp.zeros((1, after_scene + 1), jnp.int32).at[0, -1].set(cell_id)  # PAD everywhere else
    model = Transformer(cfg)
    params = model.init(jax.random.PRNGKey(0), tokens)
    _, cache = model.apply(params, tokens, hooks=Hooks(names=("hook_grid_embed", "hook_pos_embed")))
    g = np.asarray(cache["hook_grid_embed"][0])
    # a scene tile is placed by its row and column only: no learned position vector of its own
    pe = np.asarray(cache["hook_pos_embed"][0])
    on_grid = np.asarray(cfg.grid_positions)[: tokens.shape[1]] >= 0
    assert on_grid.sum() == world.height * world.width
    assert np.all(pe[on_grid] == 0) and np.all(np.abs(pe[~on_grid]).sum(-1) > 0)
    np.testing.assert_allclose(g[-1], g[scene_pos], rtol=1e-6)  # same cell, one by id, one by position
    assert np.abs(g[scene_pos]).sum() > 0 and np.all(g[0] == 0) and np.all(g[1] == 0)  # BOS, NUM h: no cell
    assert np.all(g[-2] == 0)  # a PAD token after the scene names no cell
    assert not np.allclose(g[scene_pos], g[scene_pos + 1])  # the next cell differs

    whole, _ = model.apply(params, tokens)
    kv = KVCache.empty(cfg, 1)
    a, _, kv = model.apply(params, tokens[:, :20], kv=kv)
    b, _, kv = model.apply(params, tokens[:, 20:], kv=kv)
    np.testing.assert_allclose(np.concatenate([a, b], axis=1), whole, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="grid_tokens: 3 entries, expected"):
        dataclasses.replace(cfg, grid_tokens=(0, 1, 2))
    with pytest.raises(ValueError, match="without grid_side"):
        TransformerConfig(vocab_size=3, context=4, grid_tokens=(0, -1, -1))


def test_numeric_tokens_embed_returns_on_a_line():
    """With `rtg_numeric`, a return-to-go token is embedded as base + value * slope: 0.5 sits
    halfway between 0 and 1 (in coin worlds only those two occur in training), other tokens keep
    their rows, gradients reach the line, and the config survives a model card's JSON."""
    import dataclasses
    import json

    from simulacra.corpus.tokens import TrajectoryFormat
    from simulacra.training.predict import PredictConfig
    from simulacra.world import task

    fmt = TrajectoryFormat(task("coin-7x7"), rtg=True)
    ids, values = fmt.rtg_values()
    assert len(ids) == 101 and values[0] == 0.0 and values[50] == 0.5 and values[-1] == 1.0
    assert fmt.to_local(fmt.rtg_token(0.5)) == ids[50]
    assert TrajectoryFormat(task("coin-7x7")).rtg_values() == ((), ())
    cfg = PredictConfig(d_model=32, d_mlp=64, rtg=True, rtg_numeric=True).transformer(fmt)
    again = TransformerConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert again == cfg and hash(again) == hash(cfg)

    model = Transformer(cfg)
    tokens = jnp.array([[ids[0], ids[50], ids[100], 3, 4]], jnp.int32)
    params = model.init(jax.random.PRNGKey(0), tokens)
    _, cache = model.apply(params, tokens, hooks=Hooks(names=("hook_embed",)))
    e = np.asarray(cache["hook_embed"][0])
    np.testing.assert_allclose(e[1], (e[0] + e[2]) / 2, atol=1e-7)
    assert not np.allclose(e[0], e[2])
    np.testing.assert_allclose(e[3:], np.asarray(params["params"]["embed"]["embedding"])[[3, 4]], rtol=1e-6)
    plain = Transformer(PredictConfig(d_model=32, d_mlp=64, rtg=True).transformer(fmt))
    assert "numeric_base" not in plain.init(jax.random.PRNGKey(0), tokens)["params"]

    grads = jax.grad(lambda p: model.apply(p, tokens)[0].sum())(params)["params"]
    assert np.abs(np.asarray(grads["numeric_slope"])).sum() > 0
    assert np.all(np.asarray(grads["embed"]["embedding"])[list(ids)] == 0)  # their own rows are not used

    with pytest.raises(ValueError, match="needs rtg=True"):
        PredictConfig(rtg_numeric=True)
    with pytest.raises(ValueError, match="2 numeric_ids but 1 numeric_values"):
        dataclasses.replace(cfg, numeric_ids=(1, 2), numeric_values=(0.0,))
    with pytest.raises(ValueError, match="distinct token ids"):
        dataclasses.replace(cfg, numeric_ids=(1, 1), numeric_values=(0.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        dataclasses.replace(cfg, numeric_ids=(1,), numeric_values=(float("nan"),))


def test_bfloat16_compute_stays_close_to_float32_with_float32_parameters_and_outputs():
    """Mixed precision: the same parameters give logits within bfloat16's rounding of the float32
    model's, on every path (chunked, full, KV cache); logits and recorded activations are float32."""
    import dataclasses

    from simulacra.nets import KVCache

    cfg = dataclasses.replace(CFG, context=200, dtype="bfloat16")
    f32 = Transformer(dataclasses.replace(cfg, dtype="float32"))
    bf = Transformer(cfg)
    tokens = jax.random.randint(jax.random.PRNGKey(2), (2, 200), 0, 50)
    params = f32.init(jax.random.PRNGKey(0), tokens)
    assert jax.tree.structure(params) == jax.tree.structure(bf.init(jax.random.PRNGKey(0), tokens))
    ref, _ = f32.apply(params, tokens)
    chunked, _ = bf.apply(params, tokens)
    full, cache = bf.apply(params, tokens, hooks=Hooks(names=("blocks.0.attn.hook_pattern", "blocks.1.hook_mlp_out")))
    kv_logits, _, _ = bf.apply(params, tokens[:, :20], kv=KVCache.empty(cfg, 2))
    assert chunked.dtype == full.dtype == kv_logits.dtype == jnp.float32
    assert all(v.dtype == jnp.float32 for v in cache.values())
    for out in (chunked, full):
        assert float(jnp.max(jnp.abs(out - ref))) < 0.05 and not np.array_equal(out, ref)
    assert float(jnp.max(jnp.abs(kv_logits - ref[:, :20]))) < 0.05
    with pytest.raises(ValueError, match="dtype"):
        TransformerConfig(vocab_size=5, context=4, dtype="float16")
