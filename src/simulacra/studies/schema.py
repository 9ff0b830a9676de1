"""The study file's schema: the pydantic models of the YAML file, as written.

`Study` is the whole file; its parts are `Profile`, `WorldSpec`, `CorpusSpec`, `ProcessSpec` and
`Hypothesis` (with `Seed`, and `Compare` or `Trend` of `Group`s). Each model checks what it can
see on its own — known keys, types, world knobs and tasks, mixtures, sweep entries, a hypothesis's
shape, sizes within their bounds (`MAX_SEEDS`, corpus episodes and seeds) — and the
cross-references between them (a process's world, a hypothesis's metric, scale references, the
number of units against `MAX_UNITS` …) are checked when the study is resolved for a profile
(`simulacra.studies.resolve`).
A `Study` returned by `load_study` is the resolved one: its profile applied, scale values
substituted, only the processes and hypotheses the profile runs.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulacra.characters import parse_mixture
from simulacra.corpus.generate import MAX_EPISODES, MAX_SEED
from simulacra.studies.errors import StudyError, known
from simulacra.studies.registry import PROCESSES
from simulacra.world.params import WorldParams, from_ascii
from simulacra.world.tasks import TASKS, task

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SCALE_REF = re.compile(r"^scale\.([A-Za-z_][A-Za-z0-9_]*)$")
SWEEP_ROOTS = ("world", "corpus", "params")
CORPUS_FIELDS = ("mixture", "episodes", "seed", "top")
WORLD_KNOBS = tuple(f.name for f in dataclasses.fields(WorldParams) if f.name != "name")
EXPECT_COMPARE = ("greater", "less", "different")
EXPECT_TREND = ("increasing", "decreasing", "different")
MAX_SEEDS = 10_000
"""The most seeds a study (or profile) may run per unit."""
MAX_UNITS = 100_000
"""The most units a study may expand to (seeds × sweep points, summed over its processes); checked
before anything is expanded, so a typo cannot make `study status` expand without end."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Profile(_Spec):
    """A named variant of the study (e.g. `quick`, `full`); what it leaves out is the study's."""

    description: str = ""
    """What the profile is for, and how long it takes."""
    seeds: int | None = Field(None, ge=1, le=MAX_SEEDS)
    """Seeds per unit (overrides the study's; at most `MAX_SEEDS`)."""
    scale: dict[str, int | float] = {}
    """Scale values (override the study's and the process kinds' defaults)."""
    processes: list[str] | None = None
    """Run only these processes (default: all)."""
    hypotheses: list[str] | None = None
    """Test only these hypotheses (default: all whose processes run)."""
    sweep: dict[str, dict[str, list[Any]]] = {}
    """Per process, sweep keys whose value lists replace the process's own (e.g. fewer points)."""


class WorldSpec(_Spec):
    """A named world: a task from `simulacra.world.tasks` or an ASCII map, with knobs."""

    task: str | None = None
    """A task name (`simulacra world list`)."""
    map: str | None = None
    """An ASCII map (docs/world.md), instead of a task."""
    knobs: dict[str, Any] = {}
    """`WorldParams` fields to override, e.g. `reward_delay: 2`."""

    @field_validator("knobs")
    @classmethod
    def _knob_names(cls, knobs: dict[str, Any]) -> dict[str, Any]:
        for k in knobs:
            if k not in WORLD_KNOBS:
                raise ValueError(f"{k!r} is not a world knob; known: {known(WORLD_KNOBS)}")
        return knobs

    @model_validator(mode="after")
    def _builds(self) -> "WorldSpec":
        if (self.task is None) == (self.map is None):
            raise ValueError("give exactly one of task (a task name) or map (an ASCII map)")
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"task {self.task!r} is not a task; known: {known(TASKS)}")
        self.build()
        return self

    def build(self, **overrides) -> WorldParams:
        """The world's `WorldParams`, with knob overrides (raises ValueError on a bad world)."""
        knobs = {**self.knobs, **overrides}
        try:
            if self.task is not None:
                return task(self.task, **knobs)
            return from_ascii(self.map, **knobs)
        except TypeError as e:  # a non-knob keyword; knob names are checked above, so unlikely
            raise ValueError(str(e)) from None


def _check_episodes(v: Any) -> Any:
    """A corpus's episodes: 1 … `MAX_EPISODES`, or (before resolving) a `scale.<name>` reference."""
    if isinstance(v, str) and SCALE_REF.match(v):
        return v
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_EPISODES:
        return v
    raise ValueError(f"{v!r} is not allowed: episodes must be an integer in 1..{MAX_EPISODES:_} or a scale.<name> reference")


class CorpusSpec(_Spec):
    """A named corpus: characters acting in a world (generated once, cached, shared)."""

    world: str
    """The world it is generated in (a name under `worlds:`)."""
    mixture: str
    """Who acts, e.g. `seeker:1,random:1` (docs/corpus.md)."""
    episodes: int | str
    """Episodes (1 … `MAX_EPISODES`, 10⁷), or a `scale.<name>` reference."""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """Generation seed, 0 … 2³²−1 (the corpus is a function of it)."""
    top: float | None = Field(None, gt=0, le=1)
    """If set, only the best `top` fraction of those episodes by return (`corpus.top_fraction`:
    the data of the %BC baseline); unset, the whole corpus (and unit ids as before)."""

    @field_validator("mixture")
    @classmethod
    def _mixture(cls, v: str) -> str:
        parse_mixture(v)
        return v

    @field_validator("episodes", mode="before")
    @classmethod
    def _episodes(cls, v: Any) -> Any:
        return _check_episodes(v)


class ProcessSpec(_Spec):
    """A named process: a registered kind, its inputs, its parameters and its sweep."""

    kind: str
    """A registered process kind."""
    description: str = ""
    """What this process is, in a line."""
    world: str | None = None
    """The world it trains or acts in (default: its corpus's world)."""
    corpus: str | None = None
    """The corpus it trains on, if any."""
    eval_world: str | None = None
    """The world it is measured in, if not `world` (e.g. the coin moved)."""
    params: dict[str, Any] = {}
    """The kind's parameters (validated by the kind's model at every sweep point; `scale.<name>`
    values are substituted by `load_study`)."""
    sweep: dict[str, list[Any]] = {}
    """Knob path -> values: `world.<knob>`, `corpus.<field>` or `params.<field>`; the grid is their product."""

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in PROCESSES:
            raise ValueError(f"{v!r} is not a process kind; known: {known(PROCESSES)}")
        return v

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, sweep: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in sweep.items():
            check_sweep_entry(path, values)
        return sweep


def check_sweep_entry(path: str, values: list[Any]) -> None:
    """A sweep key and its values, checked on their own (ValueError naming the problem)."""
    root, _, field = path.partition(".")
    if root not in SWEEP_ROOTS or not field:
        raise ValueError(f"sweep key {path!r} is not allowed: write world.<knob>, corpus.<field> or params.<field>")
    if not values:
        raise ValueError(f"sweep {path!r} has an empty list of values; give at least one value")
    for v in values:
        if not isinstance(v, (int, float, str, bool)):
            raise ValueError(f"sweep {path!r}: value {v!r} is not allowed: values must be numbers, strings or booleans")
    if len({(type(v), v) for v in values}) != len(values):
        raise ValueError(f"sweep {path!r} lists a value twice: {values}")


class Group(_Spec):
    """One side of a comparison: a process's units, optionally only some sweep points."""

    process: str
    """A process name."""
    where: dict[str, Any] = {}
    """Sweep key -> the value (or list of values) to keep; other sweep points are averaged per seed."""

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        return {"process": v} if isinstance(v, str) else v

    def describe(self) -> str:
        if not self.where:
            return self.process
        return f"{self.process}[{', '.join(f'{k}={v}' for k, v in self.where.items())}]"


class Compare(_Spec):
    """Effect = aggregate(a) − aggregate(b), over seeds."""

    a: Group
    """The group expected to be greater (for `expect: greater`)."""
    b: Group
    """The reference group."""


class Trend(_Spec):
    """Effect = least-squares slope of the metric against a swept knob."""

    process: str
    """A process name."""
    knob: str
    """One of its sweep keys, with numeric (or boolean) values."""
    where: dict[str, Any] = {}
    """Other sweep keys -> the value(s) to keep; remaining points are averaged per seed and knob value."""
    versus: Group | None = None
    """Another process (and sweep points) swept over the same knob: the effect is then the mean
    over seeds of this slope minus that one's (paired by seed)."""

    def describe(self) -> str:
        where = f"[{', '.join(f'{k}={v}' for k, v in self.where.items())}]" if self.where else ""
        own = f"{self.process}{where}: slope vs {self.knob}"
        return own if self.versus is None else f"{own} − {self.versus.describe()}: slope"


class Seed(_Spec):
    """The seed-essay sentence a hypothesis operationalises."""

    essay: str
    """The essay's title (see ../shared/seeds/)."""
    section: str = ""
    """The section, if any."""
    sentence: str
    """The claim, stated in our own words."""


class Hypothesis(_Spec):
    """A claim tested by the study: a metric, the groups compared and the expected direction."""

    id: str
    """A short id (H1, H2 …)."""
    claim: str
    """The claim in one sentence."""
    seed: Seed
    """Where the claim comes from."""
    metric: str
    """A metric the referenced processes' kinds produce."""
    compare: Compare | None = None
    """Two groups (give this or `trend`)."""
    trend: Trend | None = None
    """A process and a swept knob (give this or `compare`)."""
    expect: Literal["greater", "less", "increasing", "decreasing", "different"]
    """Expected direction: greater/less (compare, and a trend's slope against its `versus`), increasing/decreasing
    (trend), different (any)."""
    aggregate: Literal["mean", "iqm"] = "mean"
    """Per-group summary over seeds: mean, or the interquartile mean (robust to outlying seeds)."""
    min_effect: float = Field(0.0, ge=0, allow_inf_nan=False)
    """The smallest effect that counts as support: "supported" needs the whole interval beyond it on
    the expected side (for `different`, outside [−min_effect, min_effect]); "refuted" still means
    wholly on the wrong side of 0."""
    caveats: str = ""
    """Known caveats, shown in the report."""

    @model_validator(mode="after")
    def _shape(self) -> "Hypothesis":
        if (self.compare is None) == (self.trend is None):
            raise ValueError("give exactly one of compare (two groups) or trend (a process and a knob)")
        versus = self.trend is not None and self.trend.versus is not None
        allowed = EXPECT_COMPARE if self.compare is not None or versus else EXPECT_TREND
        if self.expect not in allowed:
            which = "compare" if self.compare is not None else "trend with versus" if versus else "trend"
            raise ValueError(f"expect {self.expect!r} is not allowed with {which}; allowed: {known(allowed)}")
        if self.trend is not None and self.aggregate != "mean":
            raise ValueError(f"aggregate {self.aggregate!r} is not allowed with trend (the effect is a least-squares slope); allowed: mean")
        return self

    def processes(self) -> list[str]:
        if self.compare is not None:
            return list(dict.fromkeys([self.compare.a.process, self.compare.b.process]))
        return list(dict.fromkeys([self.trend.process] + ([self.trend.versus.process] if self.trend.versus is not None else [])))

    def describe_groups(self) -> str:
        if self.compare is not None:
            return f"{self.compare.a.describe()} − {self.compare.b.describe()}"
        return self.trend.describe()


class Study(_Spec):
    """A study file, or (from `load_study`) the study resolved for one profile."""

    name: str
    """The study's name: results go to runs/<name>/."""
    description: str = ""
    """What the study asks, in a paragraph."""
    seeds: int = Field(ge=1, le=MAX_SEEDS)
    """Seeds per unit (seeds 0 … seeds−1; at most `MAX_SEEDS`)."""
    scale: dict[str, int | float] = {}
    """Named numbers (corpus sizes, training steps …) for `scale.<name>` references and process kinds."""
    profiles: dict[str, Profile] = {}
    """Named variants (`quick`, `full` …)."""
    worlds: dict[str, WorldSpec] = {}
    """Named worlds (a study of world-less kinds, such as the text world's, has none)."""
    corpora: dict[str, CorpusSpec] = {}
    """Named corpora."""
    lenses: dict[str, dict[str, Any]] = {}
    """Lens settings by lens name (validated by the lens's model)."""
    processes: dict[str, ProcessSpec]
    """Named processes."""
    hypotheses: list[Hypothesis] = []
    """The claims tested."""
    profile: str | None = None
    """Set by `load_study`: the profile this study was resolved for (not written in the file)."""
    source: str = ""
    """Set by `load_study`: the file it was read from (not written in the file)."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"name {v!r} is not allowed: use letters, digits, '_', '-', '.' (it names a directory)")
        return v

    def world_of(self, process: str) -> str | None:
        """The name of the world a process trains or acts in (None: a world-less kind's process)."""
        p = self.processes[process]
        if p.world is None and p.corpus is None:
            return None
        return p.world if p.world is not None else self.corpora[p.corpus].world

    def only(self, ids: Sequence[str]) -> "Study":
        """This (resolved) study cut down to the hypotheses `ids` and the processes they compare.

        Unit ids do not depend on which processes a study runs, so the units of a cut-down run are
        the same rows a later run of the whole profile finds already stored."""
        hypothesis_ids = [h.id for h in self.hypotheses]
        for hid in ids:
            if hid not in hypothesis_ids:
                where = f" under profile {self.profile!r}" if self.profile else ""
                raise StudyError(
                    f"{self.source or '<study>'}: --only {hid!r} is not a hypothesis of this study{where}; known: {known(hypothesis_ids)}"
                )
        hypotheses = [h for h in self.hypotheses if h.id in ids]
        needed = {p for h in hypotheses for p in h.processes()}
        return self.model_copy(
            update={"hypotheses": hypotheses, "processes": {n: p for n, p in self.processes.items() if n in needed}}
        )
