"""Stable-Baselines3 against the Gymnasium adapter: SB3's own `check_env` on every registered id,
then `PPO("MlpPolicy", env).learn(2048)` on a grid id and a one-hot id; prints every warning, exactly.

Stable-Baselines3 is not a dependency. Install it in a throwaway venv, torch first from the local
CPU wheel (or pip fetches a CUDA build), and simulacra from a copy of the tree so that the working
tree's egg-info is left alone:

    python3 -m venv /tmp/sb3venv && /tmp/sb3venv/bin/pip install torch==2.13.0
    /tmp/sb3venv/bin/pip install stable-baselines3
    cp -r . /tmp/sb3copy && /tmp/sb3venv/bin/pip install -e /tmp/sb3copy
    /tmp/sb3venv/bin/python scripts/sb3_check.py

Expected (docs/world.md, "Gymnasium"): no warning anywhere (the grid variant is a flat box since
session 9, so SB3 no longer takes it for an image). Exits 1 on any warning, and 0 with a message
when SB3 is missing.
"""

from __future__ import annotations

import sys
import warnings


def caught(fn) -> list[str]:
    """The warnings `fn()` raises, as 'Category: message' lines."""
    with warnings.catch_warnings(record=True) as found:
        warnings.simplefilter("always")
        fn()
    return [f"{w.category.__name__}: {w.message}" for w in found]


def main() -> int:
    try:
        import torch
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_checker import check_env
    except ImportError as e:
        print(f"skipped: Stable-Baselines3 is not installed ({e}); see this script's docstring to install it")
        return 0
    import gymnasium
    import stable_baselines3

    from simulacra.world.gym import GYM_IDS

    print(f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}, gymnasium {gymnasium.__version__}")
    torch.set_num_threads(1)
    unexpected = 0
    for gym_id, (_, obs) in GYM_IDS.items():
        found = caught(lambda gym_id=gym_id: check_env(gymnasium.make(gym_id)))
        unexpected += len(found)
        print(f"check_env {gym_id} ({obs}): {len(found)} warning(s)")
        for line in found:
            print(f"    {line}")
    for ppo_id in ("simulacra/Coin-9x9-v0", "simulacra/Coin-9x9-onehot-v0"):
        found = caught(lambda ppo_id=ppo_id: PPO("MlpPolicy", gymnasium.make(ppo_id), device="cpu", seed=0, verbose=0).learn(2048))
        unexpected += len(found)
        print(f'PPO("MlpPolicy", {ppo_id}).learn(2048): {len(found)} warning(s)')
        for line in found:
            print(f"    {line}")
    print("unexpected warnings:", unexpected)
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
