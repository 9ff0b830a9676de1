"""Corpora: episodes of one world acted by a known mixture of characters, with their exact law.

    corpus = make_corpus(task("coin-7x7"), parse_mixture("seeker:0.5,random:0.5"), n_episodes=10_000)
    corpus.save("runs/corpora/coin7")          # manifest.json + .npy arrays, atomic
    corpus = Corpus.load("runs/corpora/coin7")  # verifies schema and checksums
    ideal = compute_ideal(corpus)               # the Bayes-optimal predictor, per step

Arrays (N episodes, T = horizon; steps t >= length are padding, see `mask`):

    scene (N, 2+H*W) int16         the episode's scene tokens (world.tokens)
    states (N, T+1, S) int16       state tokens of s_0 .. s_T (frozen after the end)
    obs (N, T+1, H, W, 3) uint8    symbolic observations of the same states (only if stored;
                                   `corpus.observations()` derives them exactly either way)
    actions (N, T) int8            reward, true_reward (N, T) float32
    events (N, T, 7) bool          rtg (N, T) float32  observed return-to-go
    character (N,) int8            index into the mixture
    length (N,) int16              terminated, truncated (N,) bool
    return, true_return, optimal_return (N,) float32
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

import simulacra
from simulacra.characters import Mixture
from simulacra.corpus.generate import generate_arrays
from simulacra.corpus.store import CorpusError, read_corpus_dir, write_corpus_dir
from simulacra.world.params import WorldParams

REQUIRED = (
    "scene",
    "states",
    "actions",
    "reward",
    "true_reward",
    "events",
    "rtg",
    "character",
    "length",
    "terminated",
    "truncated",
    "return",
    "true_return",
    "optimal_return",
)


@dataclasses.dataclass
class Corpus:
    """A generated corpus in memory (numpy arrays) with what made it."""

    params: WorldParams
    mixture: Mixture
    seed: int
    arrays: dict[str, np.ndarray]
    path: Path | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def n_episodes(self) -> int:
        return int(self.arrays["length"].shape[0])

    @property
    def horizon(self) -> int:
        return int(self.arrays["actions"].shape[1])

    @property
    def n_transitions(self) -> int:
        return int(self.arrays["length"].astype(np.int64).sum())

    @property
    def mask(self) -> np.ndarray:
        """(N, T) bool: real steps (t < length)."""
        return np.arange(self.horizon)[None, :] < self.arrays["length"][:, None]

    @property
    def timestep(self) -> np.ndarray:
        """(N, T) int: the step index t of every step (padding included; see `mask`)."""
        return np.broadcast_to(np.arange(self.horizon), (self.n_episodes, self.horizon))

    @property
    def fraction_of_optimal(self) -> np.ndarray:
        """(N,) true return / optimal true return of the episode's layout; nan where the optimum
        is not positive (a ratio to a zero or negative optimum does not rank returns)."""
        opt = self.arrays["optimal_return"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(opt > 0, self.arrays["true_return"] / opt, np.nan)

    def subset(self, episodes) -> "Corpus":
        """A corpus of the chosen episodes (a boolean mask or indices), e.g. for held-out splits.
        It keeps the world, mixture and seed, and is not stored anywhere until saved."""
        return dataclasses.replace(self, arrays={k: v[episodes] for k, v in self.arrays.items()}, path=None)

    def coin_cells(self) -> np.ndarray:
        """(N, K) flat cell index (row * width + column) of each episode's coins."""
        return coin_cells(self.arrays["scene"], self.params)

    def states(self, episodes=slice(None)):
        """The `State` pytree of s_0 .. s_T for the chosen episodes (decoded from the tokens)."""
        import jax

        from simulacra.world.tokens import decode

        scene = self.arrays["scene"][episodes]
        toks = self.arrays["states"][episodes]
        dec = jax.jit(jax.vmap(jax.vmap(lambda sc, tk: decode(sc, tk, self.params), in_axes=(None, 0))))
        return dec(scene, toks)

    def observations(self, episodes=slice(None)) -> np.ndarray:
        """(n, T+1, H, W, 3) uint8 symbolic observations of s_0 .. s_T: the stored ones if the
        corpus has them, else derived exactly from the state tokens."""
        if "obs" in self.arrays:
            return self.arrays["obs"][episodes]
        from simulacra.corpus.generate import observations

        return observations(self.params, self.arrays["scene"][episodes], self.arrays["states"][episodes])

    def meta(self) -> dict:
        return {
            "simulacra_version": simulacra.__version__,
            "world": self.params.to_dict(),
            "mixture": self.mixture.to_list(),
            "seed": self.seed,
            "n_episodes": self.n_episodes,
            "n_transitions": self.n_transitions,
            "horizon": self.horizon,
            "has_obs": "obs" in self.arrays,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def content_hash(self) -> str:
        """SHA-256 over what defines the corpus: world, mixture, seed and every array's bytes
        (independent of where it is stored; recorded in model cards)."""
        h = hashlib.sha256(json.dumps([self.params.to_dict(), self.mixture.to_list(), self.seed], sort_keys=True).encode())
        for name in sorted(self.arrays):
            arr = np.ascontiguousarray(self.arrays[name])
            h.update(f"{name}:{arr.dtype}:{arr.shape}".encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write atomically to `path` (see `simulacra.corpus.store`)."""
        self.path = write_corpus_dir(path, self.arrays, self.meta(), overwrite=overwrite)
        return self.path

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "Corpus":
        """Load and verify a corpus directory; a bad one raises `CorpusError` naming the problem."""
        manifest, arrays = read_corpus_dir(path, verify=verify)
        missing = [k for k in REQUIRED if k not in arrays]
        if missing:
            raise CorpusError(f"{path}: the manifest lists no {', '.join(missing)} array(s)")
        try:
            params = WorldParams.from_dict(manifest["world"])
            mixture = Mixture.from_list(manifest["mixture"])
            seed = int(manifest["seed"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CorpusError(f"{path}: the manifest's world or mixture is invalid ({e})") from None
        _check_arrays(path, params, mixture, arrays)
        return cls(params, mixture, seed, arrays, Path(path))


def coin_cells(scene: np.ndarray, params: WorldParams) -> np.ndarray:
    """(N, K) flat cell index (row * width + column) of the coins in scene token rows (N, 2+H*W),
    in row-major order."""
    from simulacra.world.params import Tile
    from simulacra.world.tokens import Vocab

    is_coin = np.asarray(scene)[:, 2:].astype(np.int64) - Vocab.TILE[0] == Tile.COIN
    order = np.argsort(~is_coin, axis=1, kind="stable")
    return order[:, : params.n_coins]


def _check_arrays(path, params: WorldParams, mixture: Mixture, arrays: dict[str, np.ndarray]) -> None:
    """Every array has the dtype and shape the schema gives it for this world."""
    from simulacra.corpus.generate import _DTYPES
    from simulacra.world.tokens import scene_length, state_length

    n = arrays["length"].shape[0] if arrays["length"].ndim == 1 else -1
    t, h, w = params.horizon, params.height, params.width
    shapes = {
        "scene": (n, scene_length(params)),
        "states": (n, t + 1, state_length(params)),
        "obs": (n, t + 1, h, w, 3),
        "events": (n, t, 7),
        **{k: (n, t) for k in ("actions", "reward", "true_reward", "rtg")},
        **{k: (n,) for k in ("character", "length", "terminated", "truncated", "return", "true_return", "optimal_return")},
    }
    for name, arr in arrays.items():
        if name not in shapes:
            raise CorpusError(f"{path}: unknown array {name!r} in the manifest")
        if arr.dtype != _DTYPES[name] or arr.shape != shapes[name]:
            raise CorpusError(
                f"{path}: array {name!r} is {arr.dtype} {list(arr.shape)}, expected {np.dtype(_DTYPES[name])} {list(shapes[name])}"
            )
    if n and (arrays["character"].min() < 0 or arrays["character"].max() >= len(mixture.characters)):
        raise CorpusError(f"{path}: character indices outside the mixture's {len(mixture.characters)} characters")
    if n and (arrays["length"].min() < 1 or arrays["length"].max() > t):
        raise CorpusError(f"{path}: episode lengths outside 1..{t}")


def make_corpus(
    params: WorldParams,
    mixture: Mixture,
    n_episodes: int,
    seed: int = 0,
    batch: int = 4096,
    store_obs: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Corpus:
    """Generate `n_episodes` episodes of `params` acted by `mixture` (same seed, same corpus)."""
    arrays = generate_arrays(params, mixture, n_episodes, seed=seed, batch=batch, store_obs=store_obs, progress=progress)
    return Corpus(params, mixture, seed, arrays)


__all__ = ["Corpus", "CorpusError", "make_corpus"]
