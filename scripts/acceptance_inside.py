"""Steering acceptance numbers of docs/inside.md (issue #7): a character-tagged simulator of
seeker + presser in the off-switch world, prompted as the seeker and steered along the tag
direction (presser − seeker); for contrast, an untagged simulator steered along the contrastive
direction of the two characters' steps; and goal retargeting (the "cheese vector") of a
behaviour-cloned seeker in coin-7x7. About 4 minutes on 2 CPU cores.

    .venv/bin/python scripts/acceptance_inside.py
"""

from __future__ import annotations

import jax
import numpy as np

from simulacra.characters import parse_mixture
from simulacra.corpus import coin_cells, make_corpus
from simulacra.lenses import steering
from simulacra.lenses.behaviour import visits
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

    # goal retargeting: the coin-at-(1, 1) direction, measured on episodes whose coin is elsewhere
    coin = task("coin-7x7", horizon=24)
    seekers = make_corpus(coin, parse_mixture("seeker:1"), 3000, seed=0)
    bc = fit(seekers, PredictConfig(loss_on="actions", **base), seed=0, progress=False)
    cell = (1, 1)
    for name in ("blocks.0.hook_resid_post", "blocks.1.hook_resid_post"):
        d = steering.coin_direction(bc, seekers, name, cell)
        print(f"coin-at-{cell} direction at {name}: episodes with the coin elsewhere")
        for k in (0, 1, 2, 4, 8):
            out = bc.act(jax.random.PRNGKey(5), 256, hooks=steering.steering_hooks(name, d, k))
            away = coin_cells(out.scene, coin)[:, 0] != cell[0] * coin.width + cell[1]
            v = visits(out.states, out.length, cell)[away].mean()
            print(f"  k={k}  P(visits {cell}) {v:.3f}  P(coin) {out.true_return[away].mean():.3f}")


if __name__ == "__main__":
    main()
