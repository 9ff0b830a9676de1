"""Issue #4's acceptance measurements, end to end (see docs/simulators.md for the figures).

    .venv/bin/python scripts/acceptance_simulators.py --out runs/acceptance4 [--steps 3000]

A. A simulator of coin-7x7 acted by seeker(0.1) + random (20,000 episodes): excess log-loss
   over the ideal per token type on 2,000 held-out episodes, calibration, KL on actions; 1,000
   dreamed episodes checked against the law and compared with the held-out corpus.
B. A Decision Transformer (return-to-go slots, loss on actions; d_model 64, the grid embedding
   and the numeric return-to-go embedding unless --no-grid / --no-rtg-numeric) on coin-7x7 acted by
   random + seeker(0.3), trained on episodes whose coin is NOT in five held-out cells, then
   prompted with the optimal return (1.0) on layouts whose coin IS in those cells; and a sweep
   of targets (including above the corpus's best return) on all layouts.

Checkpoints already in --out are reused (delete them to retrain).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from simulacra.characters import parse_mixture
from simulacra.corpus import Corpus, coin_cells, make_corpus
from simulacra.lenses import conditioning, fidelity
from simulacra.model import Simulator
from simulacra.training.predict import PredictConfig, fit
from simulacra.world import task

WORLD = task("coin-7x7")
HELD_OUT = np.array([r * WORLD.width + c for r in range(1, 6) for c in range(1, 6) if (r + c) % 5 == 0])


def corpus(out: Path, name: str, mix: str, n: int, seed: int) -> Corpus:
    path = out / name
    if path.exists():
        return Corpus.load(path)
    c = make_corpus(WORLD, parse_mixture(mix), n, seed=seed)
    c.save(path)
    return c


def model(out: Path, name: str, data: Corpus, config: PredictConfig, seed: int = 0) -> Simulator:
    path = out / name
    if path.exists():
        return Simulator.load(path)
    sim = fit(data, config, seed=seed)
    sim.save(path)
    return sim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/acceptance4"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--dreams", type=int, default=1000)
    ap.add_argument("--part", choices=["A", "B", "AB"], default="AB")
    ap.add_argument("--d-model", type=int, default=None, help="residual width (default: A 128, B 64)")
    ap.add_argument(
        "--grid", action=argparse.BooleanOptionalAction, default=True,
        help="B: the Decision Transformer gets the grid embedding (PredictConfig.grid)",
    )
    ap.add_argument(
        "--rtg-numeric", action=argparse.BooleanOptionalAction, default=True,
        help="B: embed the return-to-go as a number (PredictConfig.rtg_numeric)",
    )
    ap.add_argument("--seed", type=int, default=0, help="B: the Decision Transformer's training seed")
    ap.add_argument("--loss-on", choices=["actions", "trajectory"], default="actions", help="B: which tokens carry the DT's loss")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    def size(default_d: int) -> dict:
        d = args.d_model or default_d
        return dict(d_model=d, n_layers=2, n_heads=4, d_mlp=4 * d, batch_size=32, lr=1e-3, warmup=100, steps=args.steps)

    report: dict = {}

    if "A" in args.part:
        train = corpus(args.out, "corpusA", "seeker(0.1):0.5,random:0.5", 20_000, 0)
        held = corpus(args.out, "corpusA-held", "seeker(0.1):0.5,random:0.5", 2_000, 1)
        sim = model(args.out, "simA", train, PredictConfig(**size(128)))
        t = time.perf_counter()
        s = fidelity.scores(sim, held)
        d = sim.dream(jax.random.PRNGKey(0), args.dreams)
        legal = fidelity.legality(sim, d)
        cmp = fidelity.compare(legal, held)
        report["A"] = {
            "train_seconds": sim.card["metrics"]["train_seconds"],
            "by_type": s["by_type"],
            "action_kl": s["action_kl"],
            "dream_legal_fraction": legal["legal_fraction"],
            "dream_transitions": legal["transitions"],
            "dream_malformed": legal["malformed_episodes"],
            "dream_vs_real": cmp,
            "eval_seconds": round(time.perf_counter() - t, 1),
        }
        print(json.dumps(report["A"], indent=1), flush=True)

    if "B" in args.part:
        full = corpus(args.out, "corpusB", "random:0.5,seeker(0.3):0.5", 20_000, 2)
        seen = ~np.isin(full.coin_cells()[:, 0], HELD_OUT)
        name = "dtB" + ("-grid" if args.grid else "") + ("-num" if args.rtg_numeric else "") + ("-traj" if args.loss_on == "trajectory" else "")
        name += f"-d{args.d_model or 64}-s{args.steps}" + (f"-seed{args.seed}" if args.seed else "")
        config = PredictConfig(rtg=True, loss_on=args.loss_on, grid=args.grid, rtg_numeric=args.rtg_numeric, **size(64))
        dt = model(args.out, name, full.subset(seen), config, args.seed)
        key = jax.random.PRNGKey(1)
        out = dt.act(key, 4096, target=1.0)
        held = np.isin(coin_cells(out.scene, WORLD)[:, 0], HELD_OUT)
        frac = out.true_return[held] / out.optimal_return[held]
        sweep = conditioning.return_sweep(dt, [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0], key, n_episodes=1024)
        report["B"] = {
            "model": name,
            "train_seconds": dt.card["metrics"]["train_seconds"],
            "train_episodes": int(seen.sum()),
            "corpus_best_return": float(full.episodes.return_.max()),
            "corpus_fraction_of_optimal": float(np.nanmean(full.fraction_of_optimal)),
            "held_out_cells": HELD_OUT.tolist(),
            "held_out_episodes": int(held.sum()),
            "held_out_fraction_of_optimal": float(frac.mean()),
            "seen_fraction_of_optimal": float((out.true_return[~held] / out.optimal_return[~held]).mean()),
            "sweep": sweep,
        }
        print(json.dumps(report["B"], indent=1), flush=True)
    suffix = "" if "B" not in args.part else report["B"]["model"].removeprefix("dtB")
    (args.out / f"report{args.part}{suffix}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
