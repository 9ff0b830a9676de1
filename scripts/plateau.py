"""Does a training run's loss plateau? The evidence behind a profile's `dt_steps`.

Trains one trajectory transformer (`training.predict`, the same run a study's `condition` or
`predict` process makes) on a corpus of a flagship world and prints its mean training loss over
each tenth of the run, with the change from the tenth before. A run has plateaued when the last
tenths move by less than `--tolerance` (relative) each; the script says whether this one did.

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
from simulacra.training.predict import PredictConfig, _segment, make_run, train_data
from simulacra.world.tasks import task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="offswitch")
    ap.add_argument("--horizon", type=int, default=24)
    ap.add_argument("--mixture", default="seeker:1,presser:1,cautious:1,random:1")
    ap.add_argument("--episodes", type=int, default=10_000)
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
    print(f"{args.task} ({args.episodes} episodes of {args.mixture}); d_model {args.d_model}, {args.layers} layers, batch "
          f"{args.batch}, lr {args.lr}, loss on {args.loss_on}, {'rtg' if config.rtg else 'no rtg'}; on {jax.devices()[0].platform}",
          flush=True)
    carry, xs = jax.jit(run.init)(jax.random.PRNGKey(args.seed))
    steps = jax.jit(run.steps, donate_argnums=0)
    seg = _segment(args.steps)
    t0 = time.perf_counter()
    losses = []
    for i in range(0, args.steps, seg):
        carry, loss = steps(carry, jax.tree.map(lambda x: x[i : i + seg], xs))
        losses.append(np.asarray(loss))
    loss = np.concatenate(losses)
    tenths = loss[: len(loss) // 10 * 10].reshape(10, -1).mean(1)
    print(f"{time.perf_counter() - t0:.0f} s; mean training loss (nats per target token) by tenth of the run:")
    for k, v in enumerate(tenths):
        change = "" if k == 0 else f"  {(v - tenths[k - 1]) / tenths[k - 1]:+.2%}"
        print(f"  steps {k * args.steps // 10:>7,}-{(k + 1) * args.steps // 10:>7,}: {v:.4f}{change}")
    last = np.abs(np.diff(tenths[-3:]) / tenths[-3:-1])
    flat = bool(np.all(last < args.tolerance))
    print(f"plateau: {'yes' if flat else 'no'} (the last two tenths changed by {', '.join(f'{x:.2%}' for x in last)}; "
          f"tolerance {args.tolerance:.0%})")
    sys.exit(0)


if __name__ == "__main__":
    main()
