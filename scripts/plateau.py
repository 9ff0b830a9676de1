"""Does a training run's loss plateau? The evidence behind a profile's `dt_steps`.

Trains one trajectory transformer (`training.predict`, the same run a study's `condition` or
`predict` process makes) on a corpus of a flagship world and prints, after each tenth of the
run, its mean training loss over that tenth and its loss on held-out episodes (a second corpus
of the same world and mixture, seed 1: the same episodes every time, so it is not noisy as
batch losses are). A run has plateaued when the held-out loss of each of the last two tenths
moved by less than `--tolerance` (relative); the script says whether this one did.

    .venv/bin/python scripts/plateau.py --d-model 128 --steps 4000 --episodes 10000
    .venv/bin/python scripts/plateau.py --quick     # a smoke check at tiny sizes

Defaults are the paper profile's Decision Transformer on the off-switch corpus (`dt_switch`).
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.training.predict import PredictConfig, evaluate, make_run, train_data
from simulacra.world.tasks import task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="offswitch")
    ap.add_argument("--horizon", type=int, default=24)
    ap.add_argument("--mixture", default="seeker:1,presser:1,cautious:1,random:1")
    ap.add_argument("--episodes", type=int, default=10_000)
    ap.add_argument("--held-out", type=int, default=1000, help="held-out episodes (corpus seed 1)")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--loss-on", default="actions", choices=["actions", "trajectory"])
    ap.add_argument("--no-rtg", action="store_true", help="no return-to-go slots (a plain simulator or behaviour cloning)")
    ap.add_argument("--tolerance", type=float, default=0.01, help="relative change per tenth that counts as flat")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke check of the script")
    args = ap.parse_args()
    if args.quick:
        args.episodes, args.d_model, args.steps = 200, 16, 100
    if args.steps < 10:
        ap.error("--steps must be at least 10 (the run is read in tenths)")
    world = task(args.task, horizon=args.horizon)
    corpus = make_corpus(world, parse_mixture(args.mixture), args.episodes, seed=0)
    config = PredictConfig(
        rtg=not args.no_rtg, loss_on=args.loss_on, d_model=args.d_model, n_layers=args.layers, d_mlp=4 * args.d_model,
        steps=args.steps, batch_size=args.batch, lr=args.lr, warmup=min(100, args.steps // 10),
    )
    fmt = config.format(corpus.params)
    run = make_run(config, train_data(corpus, config), fmt)
    print("mean loss, nats per target token:")
    print(f"{args.task} ({args.episodes} episodes of {args.mixture}); d_model {args.d_model}, {args.layers} layers, batch "
          f"{args.batch}, lr {args.lr}, loss on {args.loss_on}, {'rtg' if config.rtg else 'no rtg'}; on {jax.devices()[0].platform}",
          flush=True)
    held = train_data(make_corpus(world, parse_mixture(args.mixture), args.held_out, seed=1), config)
    mask = np.asarray(held.loss_mask)[:, 1:]
    carry, xs = jax.jit(run.init)(jax.random.PRNGKey(args.seed))
    steps = jax.jit(run.steps, donate_argnums=0)
    tenth = args.steps // 10
    t0 = time.perf_counter()
    rows = []
    for k in range(10):
        lo, hi = k * tenth, (k + 1) * tenth if k < 9 else args.steps
        carry, loss = steps(carry, jax.tree.map(lambda x: x[lo:hi], xs))
        per_token = evaluate(config, carry[0], held, fmt)[:, 1:]
        rows.append((lo, hi, float(np.mean(np.asarray(loss))), float(per_token.sum() / mask.sum())))
        print(f"  steps {lo:>7,}-{hi:>7,}: training {rows[-1][2]:.4f}, held-out {rows[-1][3]:.4f}  ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    held_out = np.array([r[3] for r in rows])
    last = np.abs(np.diff(held_out[-3:]) / held_out[-3:-1])
    flat = bool(np.all(last < args.tolerance))
    best = int(np.argmin(held_out))
    print(f"plateau: {'yes' if flat else 'no'} (held-out loss of the last two tenths changed by "
          f"{', '.join(f'{x:.2%}' for x in last)}; tolerance {args.tolerance:.0%}); lowest held-out loss after tenth {best + 1}")
    sys.exit(0)


if __name__ == "__main__":
    main()
