"""Export a corpus as a Minari dataset (needs the `minari` extra: `pip install -e '.[minari]'`).

Each episode becomes a Minari episode with the symbolic observations of s_0 .. s_L (flat, (H * W *
3,) uint8, as `simulacra.world.gym`'s grid variant observes them; reshape to (H, W, 3)), the actions,
the observed rewards, terminations and truncations; `infos` carries the true reward and the
events of each step (zeros for the reset). The dataset is written under `root` (or Minari's
default, `MINARI_DATASETS_PATH` or `~/.minari/datasets`) and loads with
`minari.load_dataset(dataset_id)`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np

from simulacra.world.core import EVENT_NAMES


@contextlib.contextmanager
def _datasets_root(root: str | Path | None):
    if root is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def export_minari(corpus, dataset_id: str, root: str | Path | None = None, description: str | None = None):
    """Write `corpus` as the Minari dataset `dataset_id`; returns the `MinariDataset`."""
    try:
        import minari
        from minari.data_collector import EpisodeBuffer
    except ImportError:
        raise RuntimeError("Minari export needs the minari extra: pip install -e '.[minari]'") from None
    from simulacra.world.gym import SimulacraEnv

    env = SimulacraEnv(corpus.params)
    a = corpus.episodes
    obs = corpus.observations()
    buffers = []
    for i in range(corpus.n_episodes):
        n = int(a.length[i])
        ends = np.zeros(n, bool)
        ends[-1] = True
        infos = {"true_reward": np.concatenate([[0.0], a.true_reward[i, :n]]).astype(np.float32)}
        for j, name in enumerate(EVENT_NAMES):
            infos[f"event_{name}"] = np.concatenate([[False], a.events[i, :n, j]])
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=obs[i, : n + 1].reshape(n + 1, -1),  # flat, as the Gymnasium adapter observes
                actions=a.actions[i, :n].astype(np.int64),
                rewards=a.reward[i, :n].astype(np.float64).tolist(),
                terminations=(ends & bool(a.terminated[i])).tolist(),
                truncations=(ends & bool(a.truncated[i])).tolist(),
                infos=infos,
            )
        )
    if root is not None and Path(root).exists() and not Path(root).is_dir():
        raise ValueError(f"the Minari root {root} is not a directory")
    with _datasets_root(root):
        from minari.storage.datasets_root_dir import get_dataset_path

        target = Path(get_dataset_path(dataset_id))
        existed = target.exists()
        try:
            return _create(minari, dataset_id, buffers, env, corpus, description)
        except BaseException:
            if not existed:  # leave no half-written dataset behind
                shutil.rmtree(target, ignore_errors=True)
            raise


def _create(minari, dataset_id, buffers, env, corpus, description):
    from gymnasium import spaces

    mix = ", ".join(f"{n}:{w:.3g}" for n, w in zip(corpus.mixture.names, corpus.mixture.weights))
    return minari.create_dataset_from_buffers(
        dataset_id,
        buffers,
        observation_space=env.observation_space,
        action_space=spaces.Discrete(env.action_space.n),
        algorithm_name=f"simulacra characters: {mix}",
        description=description or f"simulacra corpus of {corpus.params.name}, seed {corpus.seed}",
        data_format="hdf5",
        jpeg_encoding=False,
    )


def load_minari(dataset_id: str, root: str | Path | None = None):
    """`minari.load_dataset(dataset_id)` from `root`."""
    import minari

    with _datasets_root(root):
        return minari.load_dataset(dataset_id)
