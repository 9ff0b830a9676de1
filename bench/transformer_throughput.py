"""Transformer training throughput: tokens/s of simulacra vs Hugging Face's Decision Transformer, in one run.

    (a) simulacra: one training step of `simulacra.nets.transformer.Transformer` -- the loss of
        `simulacra.training.predict` (`loss_fn`: next-token log-loss over the full vocabulary at
        every position), gradient, global-norm clipping (1.0) and AdamW with `make_run`'s
        warm-up/cosine schedule -- on fixed-length rows of T tokens (rows of the coin-7x7 corpus,
        every position a target, so no work is skipped); a jitted `lax.scan` over `--steps`
        optimiser steps, the batch drawn inside the step as `make_run` does;
    (b) peer: `transformers.DecisionTransformerModel` (PyTorch, CPU, float32, no torch.compile) at the same
        width, depth, heads, MLP width and batch, on K = T/3 timesteps, i.e. the same T tokens
        (return, state, action per timestep); cross-entropy of its action predictions, backward,
        `clip_grad_norm_(1.0)`, `torch.optim.AdamW`, `--steps` steps in a Python loop. Dropout is
        off, the MLP activation is the tanh GELU and the KV cache is off, as in (a). It is timed
        at each of `--threads` torch thread counts (default 1 and all cores) and its best is kept:
        on a machine busy with other work, 2 OpenMP threads on 2 cores can be 3x slower than 1.
        Its attention is HF's default, "sdpa" (PyTorch's fused `scaled_dot_product_attention`);
        `--hf-attention sdpa eager` also times "eager" (scores and softmax materialised, as (a) does);
    (c) simulacra's own run, `make_run` on the coin-7x7 corpus (`seeker(0.1):0.5,random:0.5`): its
        length buckets crop short episodes, so its tokens/s counts the tokens it actually
        processes (batch x (cropped length - 1) per step); context is the corpus format's.

Tokens/s = batch x T x steps / seconds (forward + backward + optimiser step). Each contender
lives in a worker process of its own (this script run with `--worker NAME`), built and compiled
once; the parent then asks them in turn for one timed call, `--rounds` interleaved rounds with a
short pause between calls, and keeps the best of each, so a transient load hits all of them
alike and neither framework's thread pool (torch's OpenMP threads spin after their work; XLA's
pool) runs inside the other's timing. (Session 4 timed all of them in one process: (a) lost
about a fifth to the torch threads beside it.) The ratio printed is (a) / (b).

Machine peak: the best of a jitted float32 `jnp.dot` of two N x N matrices (2 N^3 FLOPs), measured
in every round. simulacra's achieved GFLOP/s counts the training step's FLOPs analytically (d =
d_model, L = n_layers, V = vocabulary, B = batch, T = tokens per row):

    N     = L * (4 d^2 + 2 d d_mlp)                   non-embedding weights (biases, LayerNorm ignored)
    FLOPs = 6 N B T                                   weight matmuls, forward (2) + backward (4)
          + 12 L B T^2 d                              attention scores and mixing, fwd + bwd (the full
                                                      T x T square, which is what is computed, then masked)
          + 6 d V B T                                 unembedding, fwd + bwd

(the embedding is a lookup; softmax, LayerNorm, GELU and the optimiser are not counted). As a
cross-check the script prints XLA's own count for one compiled step (`cost_analysis()`).

Devices and precision. Both sides run on whatever their framework finds: JAX's default backend,
and CUDA for the peer when `torch.cuda.is_available()` (else its CPU); the script prints both
devices. `--dtype bfloat16` runs (a) and (c) in mixed precision (`TransformerConfig.dtype`:
bfloat16 products, float32 parameters) and the peer under `torch.autocast(dtype=torch.bfloat16)`,
and measures the peak with a bfloat16 matmul. In float32 on a GPU both sides may use TF32 for
matrix products (JAX's default precision; torch's `set_float32_matmul_precision("high")` is set
for the peer), and the peak is measured the same way. HF's DecisionTransformerModel refuses
`sdpa` in some transformers versions (5.17 on the GPU machine: only "eager"): the script then
says so and times "eager" in its place. On a GPU the peak matmul is 8192 x 8192 (`--matmul`)
and torch threads are not varied.

Run: `make bench` (installs torch==2.13.0 first, then the `bench` extra with transformers) or
`.venv/bin/python bench/transformer_throughput.py [--layers 4] [--dtype bfloat16] [--quick]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.nets.transformer import Transformer, TransformerConfig
from simulacra.training.predict import N_BUCKETS, PredictConfig, _buckets, loss_fn, make_run, train_data
from simulacra.world.tasks import task

HF_MISSING = (
    "HF peer skipped: torch/transformers not importable ({err}); install them with `make bench`, or "
    "`.venv/bin/pip install torch==2.13.0 && .venv/bin/pip install transformers==5.23.0` (torch first: "
    "the CPU build on disk; otherwise pip fetches a CUDA build of several GB)"
)


def step_flops(d: int, n_layers: int, d_mlp: int, vocab: int, batch: int, t: int) -> float:
    """Analytic FLOPs of one training step (see the module docstring)."""
    n = n_layers * (4 * d * d + 2 * d * d_mlp)
    return 6.0 * n * batch * t + 12.0 * n_layers * batch * t * t * d + 6.0 * d * vocab * batch * t


def _optimizer(lr: float, steps: int):
    """`make_run`'s optimiser: clip to global norm 1, AdamW with warm-up then cosine decay."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, 1, steps + 1)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))


def make_ours(args, bank: np.ndarray, vocab: int):
    """(a): returns `(run, flops_xla)`; `run()` does `args.steps` steps on rows of T + 1 tokens
    (the model reads T of them) and blocks until done."""
    t = args.context
    cfg = TransformerConfig(vocab, t, args.d_model, args.layers, args.heads, args.d_mlp, dtype=args.dtype)
    model = Transformer(cfg)
    opt = _optimizer(1e-3, args.steps)
    rows = jnp.asarray(bank[:, : t + 1])
    mask = jnp.ones(rows.shape, bool)
    grad = jax.value_and_grad(lambda p, tok, m: loss_fn(model, p, tok, m))

    def one_step(params, state, tok, m):
        loss, g = grad(params, tok, m)
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state, loss

    def steps(carry, key, rows, mask):
        def body(carry, k):
            idx = jax.random.randint(k, (args.batch,), 0, rows.shape[0])
            params, state, loss = one_step(*carry, rows[idx], mask[idx])
            return (params, state), loss

        return jax.lax.scan(body, carry, jax.random.split(key, args.steps))

    params = model.init(jax.random.PRNGKey(0), rows[:1, :-1])
    carry = (params, opt.init(params))
    # XLA's own FLOP count of one step (outside the scan, whose loop body it may count once).
    flops_xla = None
    try:
        if args.no_xla_count:
            return _compiled_run(steps, carry, rows, mask, args), None
        ca = jax.jit(one_step).lower(*carry, rows[: args.batch], mask[: args.batch]).compile().cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        flops_xla = float(ca["flops"]) if ca and "flops" in ca else None
    except Exception as e:  # cost analysis is best effort: not every backend/version provides it
        print(f"(XLA cost_analysis unavailable: {type(e).__name__}: {e})")
    return _compiled_run(steps, carry, rows, mask, args), flops_xla


def _compiled_run(steps, carry, rows, mask, args):
    """`run()`: one timed call of the jitted step loop (compiled here, by a first call)."""
    steps = jax.jit(steps, donate_argnums=0)
    state = {"carry": carry, "i": 0}

    def run():
        state["i"] += 1
        state["carry"], losses = steps(state["carry"], jax.random.PRNGKey(state["i"]), rows, mask)
        jax.block_until_ready(losses)

    run()  # compile
    return run


def make_ours_corpus(args, corpus):
    """(c): `make_run` on the corpus as training runs it; returns `(run, tokens per call)`."""
    config = PredictConfig(
        d_model=args.d_model, n_layers=args.layers, n_heads=args.heads, d_mlp=args.d_mlp,
        steps=args.steps, batch_size=args.batch, warmup=1, dtype=args.dtype,
    )
    fmt = config.format(corpus.params)
    data = train_data(corpus, config)
    run = make_run(config, data, fmt)
    _, crop, _ = _buckets(data, N_BUCKETS, config.batch_size, config.steps)
    carry, xs = jax.jit(run.init)(jax.random.PRNGKey(0))
    tokens = int(sum(args.batch * (crop[b] - 1) for b in np.asarray(xs[1])))
    steps = jax.jit(run.steps, donate_argnums=0)
    state = {"carry": carry}

    def go():
        state["carry"], losses = steps(state["carry"], xs)
        jax.block_until_ready(losses)

    go()  # compile (every bucket's branch is in the one program)
    return go, tokens


def make_hf(args, attention: str = "sdpa"):
    """(b): returns `run(threads)` or None (with a message) when torch/transformers are missing.
    `attention`: HF's attention implementation, "sdpa" (its default: PyTorch's fused
    scaled_dot_product_attention) or "eager" (scores and softmax materialised, as in (a))."""
    try:
        import torch
        import transformers
        from transformers import DecisionTransformerConfig, DecisionTransformerModel
    except ImportError as e:
        print(HF_MISSING.format(err=e))
        return None
    torch.manual_seed(0)
    k = args.context // 3
    act_dim = 5
    config = DecisionTransformerConfig(
        state_dim=args.state_dim, act_dim=act_dim, hidden_size=args.d_model, n_layer=args.layers,
        n_head=args.heads, n_inner=args.d_mlp, max_ep_len=k, n_positions=max(1024, 3 * k), bos_token_id=None, eos_token_id=None,
        activation_function="gelu_new",  # tanh GELU, as flax's nn.gelu
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, action_tanh=False, use_cache=False,
    )
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda" and args.dtype == "float32":
        torch.set_float32_matmul_precision("high")  # TF32 products, as JAX's default precision on a GPU
    g = torch.Generator().manual_seed(0)
    autocast = (
        torch.autocast(dev.type, dtype=torch.bfloat16) if args.dtype == "bfloat16" else contextlib.nullcontext()
    )
    b = args.batch
    batches = []
    for _ in range(4):  # a few distinct batches, cycled
        acts = torch.randint(0, act_dim, (b, k), generator=g)
        batches.append(dict(
            states=torch.randn(b, k, args.state_dim, generator=g),
            actions=torch.nn.functional.one_hot(acts, act_dim).float(),
            returns_to_go=torch.rand(b, k, 1, generator=g),
            timesteps=torch.arange(k).expand(b, k).contiguous(),
            attention_mask=torch.ones(b, k, dtype=torch.long),
            target=acts,
        ))
    batches = [{n: v.to(dev) for n, v in batch.items()} for batch in batches]

    def build(implementation: str):
        """The model, its optimiser and its step, after one warm-up step per thread count (a
        refused attention implementation fails here, at construction or in the first step)."""
        config._attn_implementation = implementation
        model = DecisionTransformerModel(config)
        if model.config._attn_implementation != implementation:
            raise ValueError(f"it chose {model.config._attn_implementation!r}")
        model = model.to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)

        def one_step(batch):
            with autocast:
                out = model(**{n: v for n, v in batch.items() if n != "target"}, return_dict=True)
                loss = torch.nn.functional.cross_entropy(out.action_preds.reshape(-1, act_dim).float(), batch["target"].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss

        for threads in args.threads:  # warm-up
            torch.set_num_threads(threads)
            one_step(batches[0])
        return model, one_step

    try:
        model, one_step = build(attention)
    except Exception as e:
        if attention == "eager":
            raise
        print(f"HF DecisionTransformerModel refuses attention {attention!r} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
              "timing 'eager' in its place")
        model, one_step = build("eager")

    def run(threads: int):
        torch.set_num_threads(threads)
        for i in range(args.steps):
            one_step(batches[i % len(batches)])
        if dev.type == "cuda":
            torch.cuda.synchronize()

    n_params = sum(p.numel() for p in model.parameters())
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({platform.machine()})"
    print(
        f"HF peer: torch {torch.__version__}, transformers {transformers.__version__}, attention "
        f"{model.config._attn_implementation}, K={k} timesteps -> {3 * k} tokens, {n_params:,} parameters, "
        f"{args.dtype}{' (autocast)' if args.dtype == 'bfloat16' else ''}, on {where}"
    )
    return run, model.config._attn_implementation, where


def make_matmul(n: int, dtype: str = "float32"):
    a = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.PRNGKey(2), (n, n), jnp.float32).astype(dtype)
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, b))

    reps = 1 if jax.default_backend() == "cpu" else 10  # a GPU product takes milliseconds: time several

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(reps):
            out = dot(a, b)
        jax.block_until_ready(out)
        return reps * 2.0 * n**3 / (time.perf_counter() - t0)

    return run


def _timed(run) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def _corpus(args):
    return make_corpus(task("coin-7x7"), parse_mixture("seeker(0.1):0.5,random:0.5"), args.episodes, seed=0)


def _bank(args, corpus) -> tuple[np.ndarray, int]:
    """(a)'s token rows (tiled when T is longer than the corpus's rows) and the vocabulary size."""
    bank = np.asarray(train_data(corpus, PredictConfig()).tokens)
    if bank.shape[1] < args.context + 1:
        bank = np.tile(bank, (1, -(-(args.context + 1) // bank.shape[1])))
    return bank, PredictConfig().format(corpus.params).vocab_size


def _jax_device() -> str:
    d = jax.devices()[0]
    return f"{d.platform} ({getattr(d, 'device_kind', d.platform)})"


def worker(args) -> None:
    """One contender in this process: build and compile it, print one JSON line of facts, then for
    every "go" line on stdin time one call and print `{label: tokens/s}`; stop at end of input."""
    name = args.worker
    out, sys.stdout = sys.stdout, sys.stderr  # stdout carries the protocol; anything else printed goes to stderr
    tokens = args.batch * args.context * args.steps
    info: dict = {}
    if name == "ours":
        info["device"] = _jax_device()
        bank, vocab = _bank(args, _corpus(args))
        run, info["flops_xla"] = make_ours(args, bank, vocab)
        info["vocab"] = vocab

        def timed() -> dict:
            return {"ours": tokens / _timed(run)}
    elif name == "corpus":
        run, n = make_ours_corpus(args, _corpus(args))

        def timed() -> dict:
            return {"corpus": n / _timed(run)}
    elif name.startswith("hf-"):
        attention = name.removeprefix("hf-")
        made = make_hf(args, attention)
        if made is None:
            info["missing"] = True
            run = None
        else:
            run, info["attention"], info["device"] = made
        threads = args.threads if info.get("device", "cpu").startswith("cpu") else args.threads[:1]

        def timed() -> dict:
            return {} if run is None else {f"{attention}/{n}": tokens / _timed(lambda: run(n)) for n in threads}
    elif name == "peak":
        run = make_matmul(args.matmul, args.dtype)

        def timed() -> dict:
            return {"peak": max(run() for _ in range(3))}
    else:
        raise SystemExit(f"unknown worker {name!r}")
    print(json.dumps(info), file=out, flush=True)
    for line in sys.stdin:
        if line.strip() == "go":
            print(json.dumps(timed()), file=out, flush=True)


def _start(name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--worker", name],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
    )


def _reply(proc: subprocess.Popen, name: str) -> dict:
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"worker {name!r} exited (code {proc.wait()}) without answering; see its messages above")
    return json.loads(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=128, help="residual width (HF hidden_size)")
    ap.add_argument("--layers", type=int, default=2, help="transformer blocks (HF n_layer)")
    ap.add_argument("--heads", type=int, default=4, help="attention heads (HF n_head)")
    ap.add_argument("--d-mlp", type=int, default=512, help="MLP width (HF n_inner)")
    ap.add_argument("--context", type=int, default=447, help="tokens per row T (a multiple of 3; coin-7x7's rows: 447)")
    ap.add_argument("--batch", type=int, default=32, help="rows per optimiser step")
    ap.add_argument("--steps", type=int, default=10, help="optimiser steps per timed call")
    ap.add_argument("--rounds", type=int, default=3, help="measurement rounds; the best of each is reported")
    ap.add_argument("--episodes", type=int, default=2000, help="episodes in the coin-7x7 corpus")
    ap.add_argument("--state-dim", type=int, default=49, help="HF state vector size (a 7x7 grid)")
    ap.add_argument("--matmul", type=int, default=0, help="N of the N x N matmul that measures the peak (default: 2048 on a CPU, 8192 on a GPU)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="compute precision of both sides and of the peak")
    ap.add_argument("--no-xla-count", action="store_true", help="skip XLA's FLOP count of one step (an extra compilation)")
    ap.add_argument(
        "--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}),
        help="PyTorch thread counts, each timed every round; HF's best is kept",
    )
    ap.add_argument(
        "--hf-attention", nargs="+", default=["sdpa"], choices=["sdpa", "eager"],
        help="HF attention implementations to time (the first is the headline peer; sdpa is HF's default)",
    )
    ap.add_argument("--pause", type=float, default=0.5, help="seconds between two contenders' calls (spinning threads settle)")
    ap.add_argument("--no-corpus", action="store_true", help="skip (c), make_run on the corpus")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke check of the script")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one contender (see the module docstring)
    args = ap.parse_args()
    if args.quick:
        args.d_model, args.layers, args.heads, args.d_mlp, args.context = 32, 1, 2, 64, 48
        args.batch, args.steps, args.rounds, args.episodes, args.matmul = 4, 2, 1, 100, 512
    if not args.matmul:
        args.matmul = 2048 if jax.default_backend() == "cpu" else 8192
    if args.context % 3:
        ap.error(f"--context={args.context} must be a multiple of 3 (HF's tokens come in threes)")
    if args.worker:
        worker(args)
        return

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {_jax_device()}; precision {args.dtype}")
    print(
        f"model: d_model={args.d_model} n_layers={args.layers} n_heads={args.heads} d_mlp={args.d_mlp}; "
        f"T={args.context} tokens per row, batch {args.batch}, {args.steps} steps per timed call; "
        f"{args.rounds} interleaved rounds, best of each, each contender in its own process"
    )
    names = ["ours", *(f"hf-{a}" for a in args.hf_attention), *([] if args.no_corpus else ["corpus"]), "peak"]
    procs, info = {}, {}
    try:
        for name in names:  # built one at a time, so no compilation competes with another
            procs[name] = _start(name)
            info[name] = _reply(procs[name], name)
        names = [n for n in names if not info[n].get("missing")]
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name in names:
                time.sleep(args.pause)
                procs[name].stdin.write("go\n")
                for label, v in _reply(procs[name], name).items():
                    best[label] = max(best.get(label, 0.0), v)
    finally:
        for p in procs.values():
            if p.stdin:
                p.stdin.close()
            p.wait()

    vocab = info["ours"]["vocab"]
    flops_xla = info["ours"]["flops_xla"]
    flops = step_flops(args.d_model, args.layers, args.d_mlp, vocab, args.batch, args.context)
    ours_tps = best["ours"]
    gflops = ours_tps / (args.batch * args.context) * flops / 1e9
    print()
    print(f"{f'(a) simulacra, fixed length T={args.context}':<46} {ours_tps:>12,.0f} tokens/s")
    by_attention = {}
    hf = [a for a in args.hf_attention if f"hf-{a}" in names]
    for i, a in enumerate(hf):
        timed = [n for n in args.threads if f"{a}/{n}" in best]
        threads = max(timed, key=lambda n: best[f"{a}/{n}"])
        used = info[f"hf-{a}"].get("attention", a)
        by_attention[used] = best[f"{a}/{threads}"]
        label = f"(b{chr(39) * i}) HF DecisionTransformerModel, {used}"
        print(f"{label:<46} {by_attention[used]:>12,.0f} tokens/s ({threads} torch threads, on {info[f'hf-{a}'].get('device')})")
        if len(timed) > 1:
            print("     by torch threads: " + ", ".join(f"{n}: {best[f'{a}/{n}']:,.0f}" for n in timed))
    if "corpus" in best:
        print(f"{'(c) simulacra make_run on the corpus (buckets)':<46} {best['corpus']:>12,.0f} tokens/s (tokens processed)")
    print()
    for a, v in by_attention.items():
        print(f"ratio simulacra / HF Decision Transformer ({a}): {ours_tps / v:6.2f}x")
    xla = f"; XLA cost_analysis: {flops_xla / 1e9:.4g} GFLOP" if flops_xla else ""
    print(f"FLOPs per step (analytic): {flops / 1e9:.4g} GFLOP{xla}")
    print(f"simulacra achieved: {gflops:.4g} GFLOP/s (analytic count)")
    print(f"simulacra ran on: {info['ours']['device']}")
    print(f"matmul peak ({args.matmul}x{args.matmul} {args.dtype} jnp.dot): {best['peak'] / 1e9:.4g} GFLOP/s")
    print(f"fraction of matmul peak: {gflops / (best['peak'] / 1e9):.1%}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
