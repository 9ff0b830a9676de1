"""What a study can run: the registries of process kinds and lenses, and the typed interface
between the runner and a kind.

A process kind declares its parameter model (pydantic), the metric names it produces, whether it
runs several seeds in one call (`batch_seeds`), whether it needs a corpus, the scale values and
lenses it reads, the report sections it contributes, and its version; its run is

    run(ctx: Context, seeds: list[int]) -> list[Result]      # one Result per seed

The runner builds the `Context` of a call from the units' plain-data config: the kind's params
validated with their defaults, the worlds as `WorldParams`, the corpus as a `CorpusRef`, each lens's
settings as its model. A study can only name registered kinds, so the registry must be filled (by
importing the modules that register: `simulacra.kinds` for the shipped ones) before a study is
loaded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping

from pydantic import BaseModel

from simulacra.studies.artifacts import Artifacts
from simulacra.world.params import WorldParams


@dataclasses.dataclass(frozen=True)
class CorpusRef:
    """What a unit's corpus is: generated once per distinct ref (through the artifact cache)."""

    world: WorldParams
    """The world it is generated in."""
    mixture: str
    """Who acts, e.g. `seeker:1,random:1` (docs/corpus.md)."""
    episodes: int
    """Episodes."""
    seed: int
    """Generation seed (the corpus is a function of it)."""
    top: float | None = None
    """If set, the corpus is the best `top` fraction by return of the one the other fields make."""

    def key(self) -> dict:
        """JSON data identifying the corpus (what a unit's config holds under "corpus"); `top`
        only when set, so the keys and unit ids of whole corpora are what they were before it."""
        key = {"world": self.world.to_dict(), "mixture": self.mixture, "episodes": self.episodes, "seed": self.seed}
        return key if self.top is None else {**key, "top": self.top}

    @classmethod
    def from_key(cls, key: Mapping[str, Any]) -> "CorpusRef":
        return cls(WorldParams.from_dict(key["world"]), key["mixture"], key["episodes"], key["seed"], key.get("top"))


@dataclasses.dataclass(frozen=True)
class Context:
    """What the runner hands one call of a process kind."""

    process: str
    """The process's name in the study."""
    kind: str
    """The process kind."""
    params: BaseModel
    """The kind's params model, validated, defaults filled."""
    world: WorldParams | None
    """The world it trains or acts in (at this sweep point); None for a kind that needs none."""
    eval_world: WorldParams | None
    """The world it is measured in, if not `world`."""
    corpus: CorpusRef | None
    """Its corpus, if it names one."""
    lenses: Mapping[str, BaseModel]
    """The settings of the lenses the kind reads, by lens name (defaults filled)."""
    scale: Mapping[str, float]
    """The scale values the kind reads."""
    artifacts: Artifacts
    """The study's cache of shared inputs."""
    config: Mapping[str, Any]
    """The units' config without seed (JSON data; see `simulacra.studies.runner`)."""

    @property
    def measured_in(self) -> WorldParams:
        """The world it is measured in: `eval_world`, else `world`."""
        return self.eval_world if self.eval_world is not None else self.world


@dataclasses.dataclass(frozen=True)
class Result:
    """One seed's result of a process kind."""

    metrics: Mapping[str, float]
    """Declared metric names only; numbers (NaN allowed)."""
    series: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Curves and tables: any JSON-able data."""
    files: Mapping[str, bytes | Path] = dataclasses.field(default_factory=dict)
    """Plain file names -> contents, or a path to copy."""


ProcessRun = Callable[[Context, list[int]], list[Result]]


@dataclasses.dataclass(frozen=True)
class ProcessKind:
    """A kind of process a study can run: how it is configured, what it measures, how it runs."""

    name: str
    """The `kind:` a study file names."""
    params: type[BaseModel]
    """The pydantic model of its `params:` (should forbid extra keys)."""
    metrics: tuple[str, ...]
    """The metric names it produces (a hypothesis may only name these); it must return no others."""
    run: ProcessRun
    """`run(ctx, seeds) -> [Result, ...]`, one per seed."""
    batch_seeds: bool = False
    """If true, one call receives every seed of a sweep point (so it can `vmap` them); else one seed."""
    needs_corpus: bool = False
    """If true, a process of this kind must name a `corpus:`."""
    needs_world: bool = True
    """If false, a process of this kind names no world and no corpus (its params say what it
    makes, e.g. a text world's personas); `ctx.world` is then None."""
    scale: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Scale values it reads (`ctx.scale`), with their defaults (a study or profile overrides them)."""
    lenses: tuple[str, ...] = ()
    """Registered lenses whose settings it reads (`ctx.lenses`)."""
    sections: tuple[Callable, ...] = ()
    """Report-section providers it contributes (`(ReportInputs) -> Section | None`, see `simulacra.report`)."""
    version: int = 1
    """Part of every unit id: bump it when a default or the meaning of the kind's params (or of its
    metrics) changes, so that stored units are rerun."""
    description: str = ""
    """One line for listings."""
    check_world: Callable[[WorldParams], None] | None = None
    """Raises ValueError (one line) when the world a process of this kind trains in cannot serve it
    (called when a study is resolved, for every sweep point, before anything runs)."""


@dataclasses.dataclass(frozen=True)
class Lens:
    """A measurement whose settings a study may set under `lenses:`."""

    name: str
    """The key under `lenses:`."""
    settings: type[BaseModel]
    """The pydantic model of its settings (defaults apply when the study does not name the lens)."""
    description: str = ""
    """One line for listings."""


PROCESSES: dict[str, ProcessKind] = {}
"""The registered process kinds, by name."""
LENSES: dict[str, Lens] = {}
"""The registered lenses, by name."""


def register_process(
    name: str,
    *,
    params: type[BaseModel],
    metrics: tuple[str, ...] | list[str],
    batch_seeds: bool = False,
    needs_corpus: bool = False,
    needs_world: bool = True,
    scale: Mapping[str, float] | None = None,
    lenses: tuple[str, ...] | list[str] = (),
    sections: tuple[Callable, ...] | list[Callable] = (),
    version: int = 1,
    description: str = "",
    check_world: Callable[[WorldParams], None] | None = None,
) -> Callable[[ProcessRun], ProcessRun]:
    """Decorator registering `run(ctx, seeds)` as the process kind `name` (a later registration
    under the same name replaces the earlier one)."""

    def register(run: ProcessRun) -> ProcessRun:
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise TypeError(f"process kind {name!r}: params must be a pydantic model class")
        if len(set(metrics)) != len(metrics) or not metrics:
            raise ValueError(f"process kind {name!r}: metrics must be a non-empty list of distinct names")
        if not (isinstance(version, int) and version >= 1):
            raise ValueError(f"process kind {name!r}: version must be a positive integer, got {version!r}")
        PROCESSES[name] = ProcessKind(
            name=name,
            params=params,
            metrics=tuple(metrics),
            run=run,
            batch_seeds=batch_seeds,
            needs_corpus=needs_corpus,
            needs_world=needs_world,
            scale=dict(scale or {}),
            lenses=tuple(lenses),
            sections=tuple(sections),
            version=version,
            description=description,
            check_world=check_world,
        )
        return run

    return register


def register_lens(name: str, settings: type[BaseModel], description: str = "") -> Lens:
    """Register a lens's settings model under `name` (replacing any earlier one)."""
    if not (isinstance(settings, type) and issubclass(settings, BaseModel)):
        raise TypeError(f"lens {name!r}: settings must be a pydantic model class")
    LENSES[name] = Lens(name, settings, description)
    return LENSES[name]
