"""Issue #5's fine-tuning acceptance: the β = 0 and β = large curves (docs/agents.md).

    .venv/bin/python scripts/acceptance_finetune.py --out runs/acceptance5

A simulator of a random walker on coin-fixed-7x7 (the coin always in the same corner; a poor
corpus for an easy world) is RL-fine-tuned twice from the same start: β = 0 (plain RL) and
β = 1000 (held at the reference). Prints per-update return, KL to the reference and agreement.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.model import Simulator
from simulacra.training.finetune import FinetuneConfig, finetune
from simulacra.training.predict import PredictConfig, fit
from simulacra.world import task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/acceptance5"))
    ap.add_argument("--updates", type=int, default=30)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    world = task("coin-fixed-7x7")
    corpus = make_corpus(world, parse_mixture("random"), 2000, seed=0)
    path = args.out / "sim-random"
    if path.exists():
        sim = Simulator.load(path)
    else:
        sim = fit(corpus, PredictConfig(d_model=64, n_layers=2, n_heads=4, d_mlp=256, steps=400, batch_size=32, warmup=40), seed=0)
        sim.save(path)
    report = {"corpus_return": float(corpus.episodes.return_.mean())}
    for beta in (0.0, 1000.0):
        r = finetune(sim, FinetuneConfig(beta=beta, updates=args.updates, episodes=64, lr=1e-3), jax.random.PRNGKey(0))
        report[f"beta={beta:g}"] = {k: np.round(v, 4).tolist() for k, v in r.metrics.items()}
        print(f"beta={beta:g}", json.dumps({k: report[f'beta={beta:g}'][k] for k in ('return', 'kl', 'agreement')}), flush=True)
    (args.out / "finetune.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
