"""Corpora: episodes of one world acted by a known mixture of characters, with their exact law.

    corpus = make_corpus(task("coin-7x7"), parse_mixture("seeker:0.5,random:0.5"), n_episodes=10_000)
    corpus.save("runs/corpora/coin7")          # manifest.json + .npy arrays, atomic
    corpus = Corpus.load("runs/corpora/coin7")  # verifies schema, checksums and every value's range
    ideal = compute_ideal(corpus)               # the Bayes-optimal predictor, per step

A corpus is `Episodes` (`corpus.episodes`, see `simulacra.corpus.episodes` for the fields and
shapes) plus what made them: the world, the mixture of characters and the seed. A corpus always
has `rtg` and `character`; `obs` only if stored (`corpus.observations()` derives them exactly
either way).
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
from simulacra.corpus.episodes import DTYPES, Episodes
from simulacra.corpus.generate import generate_arrays
from simulacra.corpus.store import CorpusError, read_corpus_dir, write_corpus_dir
from simulacra.world.core import EVENT_NAMES
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
    """Generated episodes in memory with what made them."""

    params: WorldParams
    mixture: Mixture
    seed: int
    episodes: Episodes
    path: Path | None = None
    parent: dict | None = None
    """For a corpus drawn from another (`top_fraction`): the parent's `sha256` (content hash) and `path`."""
    filter: dict | None = None
    """For a corpus drawn from another: how, e.g. `{"top": 0.1, "per_character": False}`."""

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The episodes' arrays by their stored names (what `save` writes)."""
        return self.episodes.arrays()

    @property
    def n_episodes(self) -> int:
        return self.episodes.n_episodes

    @property
    def horizon(self) -> int:
        return self.episodes.horizon

    @property
    def n_transitions(self) -> int:
        return int(self.episodes.length.astype(np.int64).sum())

    @property
    def mask(self) -> np.ndarray:
        """(N, T) bool: real steps (t < length)."""
        return self.episodes.mask

    @property
    def timestep(self) -> np.ndarray:
        """(N, T) int: the step index t of every step (padding included; see `mask`)."""
        return np.broadcast_to(np.arange(self.horizon), (self.n_episodes, self.horizon))

    @property
    def fraction_of_optimal(self) -> np.ndarray:
        """(N,) true return / optimal true return of the episode's layout; nan where the optimum
        is not positive (a ratio to a zero or negative optimum does not rank returns)."""
        opt = self.episodes.optimal_return
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(opt > 0, self.episodes.true_return / opt, np.nan)

    def subset(self, episodes) -> "Corpus":
        """A corpus of the chosen episodes (a boolean mask or indices), e.g. for held-out splits.
        It keeps the world, mixture and seed, and is not stored anywhere until saved."""
        return dataclasses.replace(self, episodes=self.episodes.subset(episodes), path=None)

    def coin_cells(self) -> np.ndarray:
        """(N, K) flat cell index (row * width + column) of each episode's coins."""
        return coin_cells(self.episodes.scene, self.params)

    def states(self, episodes=slice(None)):
        """The `State` pytree of s_0 .. s_T for the chosen episodes (decoded from the tokens)."""
        import jax

        from simulacra.world.tokens import decode

        scene = self.episodes.scene[episodes]
        toks = self.episodes.states[episodes]
        dec = jax.jit(jax.vmap(jax.vmap(lambda sc, tk: decode(sc, tk, self.params), in_axes=(None, 0))))
        return dec(scene, toks)

    def observations(self, episodes=slice(None)) -> np.ndarray:
        """(n, T+1, H, W, 3) uint8 symbolic observations of s_0 .. s_T: the stored ones if the
        corpus has them, else derived exactly from the state tokens."""
        if self.episodes.obs is not None:
            return self.episodes.obs[episodes]
        from simulacra.corpus.generate import observations

        return observations(self.params, self.episodes.scene[episodes], self.episodes.states[episodes])

    def meta(self) -> dict:
        return {
            "simulacra_version": simulacra.__version__,
            "world": self.params.to_dict(),
            "mixture": self.mixture.to_list(),
            "seed": self.seed,
            "n_episodes": self.n_episodes,
            "n_transitions": self.n_transitions,
            "horizon": self.horizon,
            "has_obs": self.episodes.obs is not None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **({"parent": self.parent, "filter": self.filter} if self.parent is not None else {}),
        }

    def content_hash(self) -> str:
        """SHA-256 over what defines the corpus: world, mixture, seed and every array's bytes
        (independent of where it is stored; recorded in model cards)."""
        h = hashlib.sha256(json.dumps([self.params.to_dict(), self.mixture.to_list(), self.seed], sort_keys=True).encode())
        arrays = self.arrays
        for name in sorted(arrays):
            arr = np.ascontiguousarray(arrays[name])
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
        if manifest.get("family") == "text":
            raise CorpusError(f"{path} is a text corpus (simulacra.text.TextCorpus), not a gridworld corpus: gridworld commands and lenses cannot read it")
        missing = [k for k in REQUIRED if k not in arrays]
        if missing:
            raise CorpusError(f"{path}: the manifest lists no {', '.join(missing)} array(s)")
        try:
            params = WorldParams.from_dict(manifest["world"])
            mixture = Mixture.from_list(manifest["mixture"])
            seed = int(manifest["seed"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CorpusError(f"{path}: the manifest's world or mixture is invalid ({e})") from None
        parent, how = manifest.get("parent"), manifest.get("filter")  # absent before corpus filters existed
        if not all(isinstance(v, (dict, type(None))) for v in (parent, how)):
            raise CorpusError(f"{path}: the manifest's parent or filter is not a JSON object")
        _check_arrays(path, params, mixture, arrays)
        return cls(params, mixture, seed, Episodes.from_arrays(arrays), Path(path), parent, how)


def top_fraction(corpus: Corpus, fraction: float, per_character: bool = False) -> Corpus:
    """The corpus of the best `fraction` of `corpus`'s episodes by observed return (the '%BC'
    baseline's data: behaviour cloning on the top 10% is `top_fraction(corpus, 0.1)`): the
    ceil(fraction * n) episodes of highest return, ties broken toward the lower episode index,
    kept in their original order; `per_character`: the top fraction of each character's episodes
    (a character with episodes keeps at least one). It records its `parent` (content hash and
    path) and the `filter`. Its episodes are no longer the mixture's law: the ideal predictor of
    the mixture is not the ideal of a filtered corpus."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"invalid top fraction {fraction!r}: must be a number in (0, 1]")
    ret = corpus.episodes.return_
    groups = [np.flatnonzero(corpus.episodes.character == i) for i in range(len(corpus.mixture.characters))] if per_character else [np.arange(corpus.n_episodes)]
    keep = []
    for idx in groups:
        if len(idx):
            order = idx[np.argsort(-ret[idx], kind="stable")]  # idx ascending, so equal returns keep index order
            keep.append(order[: int(np.ceil(fraction * len(idx) - 1e-9))])
    chosen = np.sort(np.concatenate(keep))
    parent = {"sha256": corpus.content_hash(), "path": str(corpus.path) if corpus.path is not None else None}
    return dataclasses.replace(corpus.subset(chosen), parent=parent, filter={"top": float(fraction), "per_character": bool(per_character)})


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
    from simulacra.world.tokens import scene_length, state_length

    n = arrays["length"].shape[0] if arrays["length"].ndim == 1 else -1
    t, h, w = params.horizon, params.height, params.width
    shapes = {
        "scene": (n, scene_length(params)),
        "states": (n, t + 1, state_length(params)),
        "obs": (n, t + 1, h, w, 3),
        "events": (n, t, len(EVENT_NAMES)),
        **{k: (n, t) for k in ("actions", "reward", "true_reward", "rtg")},
        **{k: (n,) for k in ("character", "length", "terminated", "truncated", "return", "true_return", "optimal_return")},
    }
    for name, arr in arrays.items():
        if name not in shapes:
            raise CorpusError(f"{path}: unknown array {name!r} in the manifest")
        if arr.dtype != DTYPES[name] or arr.shape != shapes[name]:
            raise CorpusError(
                f"{path}: array {name!r} is {arr.dtype} {list(arr.shape)}, expected {np.dtype(DTYPES[name])} {list(shapes[name])}"
            )
    if n:
        _check_values(path, params, mixture, arrays)


def _check_values(path, params: WorldParams, mixture: Mixture, arrays: dict[str, np.ndarray]) -> None:
    """Every value is one this world and mixture can produce, so that a corpus whose arrays were
    changed and whose checksums were re-signed is refused rather than measured as nonsense."""
    from simulacra.world.core import NUM_CODES
    from simulacra.world.params import MAX_SIZE, Tile
    from simulacra.world.tokens import Vocab

    h, w, t, d = params.height, params.width, params.horizon, params.reward_delay
    scene, states = arrays["scene"].astype(np.int64), arrays["states"].astype(np.int64)
    cell = states[..., 0] - Vocab.CELL[0]
    top_tile, top_flags = (Tile.COUNT - 1, 11) if params.has_oracle else (Tile.DOOR, 3)  # flags: hidden bit status <= 2
    ranges = [  # (array, what a value is, the values, lowest, highest)
        ("scene", "map height", scene[:, 0] - Vocab.NUM[0], h, h),
        ("scene", "map width", scene[:, 1] - Vocab.NUM[0], w, w),
        ("scene", "tile id", scene[:, 2:] - Vocab.TILE[0], 0, top_tile),
        ("states", "agent row", cell // MAX_SIZE, 0, h - 1),
        ("states", "agent column", cell % MAX_SIZE, 0, w - 1),
        ("states", "coin mask", states[..., 1] - Vocab.COINS[0], 0, 2**params.n_coins - 1),
        ("states", "flag set", states[..., 2] - Vocab.FLAGS[0], 0, top_flags),
        ("states", "time step", states[..., 3] - Vocab.NUM[0], 0, t),
        ("states", "owed reward code", states[..., 4 : 4 + d] - Vocab.RCODE[0], 0, NUM_CODES - 1),
        ("states", "tamper count", states[..., 4 + d :] - Vocab.NUM[0], 0, t),
        ("actions", "action", arrays["actions"], 0, params.num_actions - 1),
        ("length", "episode length", arrays["length"], 1, t),
        ("character", "character index", arrays["character"], 0, len(mixture.characters) - 1),
    ]
    if "obs" in arrays:
        obs = arrays["obs"]
        ranges += [
            ("obs", "tile id", obs[..., 0], 0, top_tile),
            ("obs", "agent mark", obs[..., 1], 0, 1),
            ("obs", "flag set", obs[..., 2], 0, top_flags),
        ]
    for name, what, values, low, high in ranges:
        outside = (values < low) | (values > high)
        if outside.any():
            value = values[outside][0]
            raise CorpusError(f"{path}: array {name!r} holds {what} {value}, outside {low}..{high} here; the corpus is corrupt")
    for name in ("reward", "true_reward", "rtg", "return", "true_return", "optimal_return"):
        if not np.isfinite(arrays[name]).all():
            raise CorpusError(f"{path}: array {name!r} holds a value that is not a finite number; the corpus is corrupt")


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
    return Corpus(params, mixture, seed, Episodes.from_arrays(arrays))


__all__ = ["Corpus", "CorpusError", "Episodes", "make_corpus", "top_fraction"]
