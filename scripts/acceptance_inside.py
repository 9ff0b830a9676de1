"""Steering acceptance numbers of docs/inside.md (issue #7): a character-tagged simulator of
seeker + presser in the off-switch world, prompted as the seeker and steered along the tag
direction (presser − seeker); and, for contrast, an untagged simulator steered along the
contrastive direction of the two characters' steps. About 3 minutes on 2 CPU cores.

    .venv/bin/python scripts/acceptance_inside.py
"""

from __future__ import annotations

import jax
import numpy as np

from simulacra.characters import parse_mixture
from simulacra.corpus import make_corpus
from simulacra.lenses import steering
from simulacra.training.predict import PredictConfig, fit
from simulacra.world import task


def main() -> None:
    world = task("offswitch", horizon=24)
    corpus = make_corpus(world, parse_mixture("seeker:1,presser:1"), 1500, seed=0)
    base = dict(d_model=32, n_layers=2, n_heads=4, d_mlp=128, steps=300, batch_size=16, warmup=30)
    key = jax.random.PRNGKey(1)

    tagged = fit(corpus, PredictConfig(loss_on="trajectory", character=True, **base), seed=0, progress=False)
    ks = [-1, 0, 0.5, 1, 2, 4]
    for name in ("blocks.0.hook_resid_post", "blocks.1.hook_resid_post"):
        d = steering.tag_direction(tagged, corpus, name, "presser", "seeker")
        rows = steering.steering_sweep(tagged, name, d, ks, key, toward="presser", n_episodes=256, character="seeker(0.1)")
        print(f"tag direction at {name} (norm {np.linalg.norm(d):.2f}), prompted as the seeker")
        for r in rows:
            print(f"  k={r['k']:5.1f}  presser-match {r['match_rate']:.3f}  button {r['rate_button']:.3f}  return {r['return']:.3f}")
    prompted = steering.steering_sweep(tagged, "hook_embed", np.zeros(base["d_model"]), [0], key, toward="presser", n_episodes=256,
                                       character="presser(0.1)")[0]  # fmt: skip
    print(f"prompted as the presser: presser-match {prompted['match_rate']:.3f}")

    plain = fit(corpus, PredictConfig(loss_on="trajectory", **base), seed=0, progress=False)
    name = "blocks.1.hook_resid_post"
    d = steering.contrastive_direction(plain, corpus, name, "presser", "seeker")
    print(f"untagged simulator, contrastive direction at {name} (norm {np.linalg.norm(d):.2f})")
    for r in steering.steering_sweep(plain, name, d, [-2, -1, 0, 0.5, 1, 2, 4], key, toward="presser", n_episodes=256):
        print(f"  k={r['k']:5.1f}  presser-match {r['match_rate']:.3f}  return {r['return']:.3f}")


if __name__ == "__main__":
    main()
