"""Study specs: a YAML file, validated by pydantic, resolved for one profile.

A study file names worlds, corpora, lenses, processes (with sweeps) and hypotheses
(docs/studies.md has the schema and an example). `load_study(path, profile)` reads it, validates
*everything* — structure, cross-references, every sweep point's world, corpus and parameters,
each hypothesis's metric and groups, and every profile, not only the one asked for — and returns
the `Study` resolved for that profile: its seeds, its scale values substituted for `scale.<name>`
references, only the processes and hypotheses it runs, and each process's parameters completed
with their defaults. Any problem raises one `StudyError` whose message is one line naming the
file, the field path, the bad value and what is allowed, before anything touches a results store.

Processes and lenses are plugged in through registries (`register_process`, `register_lens`): a
process kind declares its parameter model (pydantic), the metric names it produces, whether it
runs several seeds in one call (`batch_seeds`), whether it needs a corpus, the scale values it
reads, the lenses it reads settings for, and its `run(config, artifacts, seeds)` function (see
`simulacra.studies.runner`). A study can only name registered kinds, so the registry must be filled
(by importing the modules that register) before a study is loaded.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulacra.characters import parse_mixture
from simulacra.world.params import WorldParams, from_ascii
from simulacra.world.tasks import TASKS, task


class StudyError(ValueError):
    """A study that cannot be loaded or run; the message is one line naming the problem."""


# ------------------------------------------------------------------------------------------------
# registries


@dataclasses.dataclass(frozen=True)
class ProcessKind:
    """A kind of process a study can run: how it is configured, what it measures, how it runs."""

    name: str
    """The `kind:` a study file names."""
    params: type[BaseModel]
    """The pydantic model of its `params:` (should forbid extra keys; defaults are filled in)."""
    metrics: tuple[str, ...]
    """The metric names it produces (a hypothesis may only name these); it must return no others."""
    run: Callable[..., list[dict]]
    """`run(config, artifacts, seeds) -> [{"metrics": {...}, "series": {...}, "files": {...}}, ...]`,
    one dict per seed (see `simulacra.studies.runner`)."""
    batch_seeds: bool = False
    """If true, one call receives every seed of a sweep point (so it can `vmap` them); else one seed."""
    needs_corpus: bool = False
    """If true, a process of this kind must name a `corpus:`."""
    scale: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Scale values it reads from `config["scale"]`, with their defaults (a profile overrides them)."""
    lenses: tuple[str, ...] = ()
    """Registered lenses whose settings it reads from `config["lenses"]`."""
    description: str = ""
    """One line for listings."""


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
    scale: Mapping[str, float] | None = None,
    lenses: tuple[str, ...] | list[str] = (),
    description: str = "",
) -> Callable[[Callable[..., list[dict]]], Callable[..., list[dict]]]:
    """Decorator registering `run(config, artifacts, seeds)` as the process kind `name` (a later
    registration under the same name replaces the earlier one)."""

    def register(run: Callable[..., list[dict]]) -> Callable[..., list[dict]]:
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise TypeError(f"process kind {name!r}: params must be a pydantic model class")
        if len(set(metrics)) != len(metrics) or not metrics:
            raise ValueError(f"process kind {name!r}: metrics must be a non-empty list of distinct names")
        PROCESSES[name] = ProcessKind(
            name=name,
            params=params,
            metrics=tuple(metrics),
            run=run,
            batch_seeds=batch_seeds,
            needs_corpus=needs_corpus,
            scale=dict(scale or {}),
            lenses=tuple(lenses),
            description=description,
        )
        return run

    return register


def register_lens(name: str, settings: type[BaseModel], description: str = "") -> Lens:
    """Register a lens's settings model under `name` (replacing any earlier one)."""
    if not (isinstance(settings, type) and issubclass(settings, BaseModel)):
        raise TypeError(f"lens {name!r}: settings must be a pydantic model class")
    LENSES[name] = Lens(name, settings, description)
    return LENSES[name]


# ------------------------------------------------------------------------------------------------
# the file's structure

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SCALE_REF = re.compile(r"^scale\.([A-Za-z_][A-Za-z0-9_]*)$")
SWEEP_ROOTS = ("world", "corpus", "params")
CORPUS_FIELDS = ("mixture", "episodes", "seed")
WORLD_KNOBS = tuple(f.name for f in dataclasses.fields(WorldParams) if f.name != "name")
EXPECT_COMPARE = ("greater", "less", "different")
EXPECT_TREND = ("increasing", "decreasing", "different")


def _known(names) -> str:
    names = list(names)
    return ", ".join(str(n) for n in names) if names else "(none)"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Profile(_Spec):
    """A named variant of the study (e.g. `quick`, `full`); what it leaves out is the study's."""

    description: str = ""
    """What the profile is for, and how long it takes."""
    seeds: int | None = Field(None, ge=1)
    """Seeds per unit (overrides the study's)."""
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
                raise ValueError(f"{k!r} is not a world knob; known: {_known(WORLD_KNOBS)}")
        return knobs

    @model_validator(mode="after")
    def _builds(self) -> "WorldSpec":
        if (self.task is None) == (self.map is None):
            raise ValueError("give exactly one of task (a task name) or map (an ASCII map)")
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"task {self.task!r} is not a task; known: {_known(TASKS)}")
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


def _check_scalar_or_ref(v: Any, what: str) -> Any:
    if isinstance(v, str) and SCALE_REF.match(v):
        return v
    if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
        return v
    raise ValueError(f"{v!r} is not allowed: {what} must be a positive integer or a scale.<name> reference")


class CorpusSpec(_Spec):
    """A named corpus: characters acting in a world (generated once, cached, shared)."""

    world: str
    """The world it is generated in (a name under `worlds:`)."""
    mixture: str
    """Who acts, e.g. `seeker:1,random:1` (docs/corpus.md)."""
    episodes: int | str
    """Episodes, or a `scale.<name>` reference."""
    seed: int = 0
    """Generation seed (the corpus is a function of it)."""

    @field_validator("mixture")
    @classmethod
    def _mixture(cls, v: str) -> str:
        parse_mixture(v)
        return v

    @field_validator("episodes", mode="before")
    @classmethod
    def _episodes(cls, v: Any) -> Any:
        return _check_scalar_or_ref(v, "episodes")


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
            raise ValueError(f"{v!r} is not a process kind; known: {_known(PROCESSES)}")
        return v

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, sweep: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in sweep.items():
            _check_sweep_entry(path, values)
        return sweep


def _check_sweep_entry(path: str, values: list[Any]) -> None:
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
    """Expected direction: greater/less (compare), increasing/decreasing (trend), different (either)."""
    aggregate: Literal["mean", "iqm"] = "mean"
    """Per-group summary over seeds: mean, or the interquartile mean (robust to outlying seeds)."""
    caveats: str = ""
    """Known caveats, shown in the report."""

    @model_validator(mode="after")
    def _shape(self) -> "Hypothesis":
        if (self.compare is None) == (self.trend is None):
            raise ValueError("give exactly one of compare (two groups) or trend (a process and a knob)")
        allowed = EXPECT_COMPARE if self.compare is not None else EXPECT_TREND
        if self.expect not in allowed:
            which = "compare" if self.compare is not None else "trend"
            raise ValueError(f"expect {self.expect!r} is not allowed with {which}; allowed: {_known(allowed)}")
        if self.trend is not None and self.aggregate != "mean":
            raise ValueError(f"aggregate {self.aggregate!r} is not allowed with trend (the effect is a least-squares slope); allowed: mean")
        return self

    def processes(self) -> list[str]:
        if self.compare is not None:
            return list(dict.fromkeys([self.compare.a.process, self.compare.b.process]))
        return [self.trend.process]

    def describe_groups(self) -> str:
        if self.compare is not None:
            return f"{self.compare.a.describe()} − {self.compare.b.describe()}"
        t = self.trend
        where = f"[{', '.join(f'{k}={v}' for k, v in t.where.items())}]" if t.where else ""
        return f"{t.process}{where}: slope vs {t.knob}"


class Study(_Spec):
    """A study file, or (from `load_study`) the study resolved for one profile."""

    name: str
    """The study's name: results go to runs/<name>/."""
    description: str = ""
    """What the study asks, in a paragraph."""
    seeds: int = Field(ge=1)
    """Seeds per unit (seeds 0 … seeds−1)."""
    scale: dict[str, int | float] = {}
    """Named numbers (corpus sizes, training steps …) for `scale.<name>` references and process kinds."""
    profiles: dict[str, Profile] = {}
    """Named variants (`quick`, `full` …)."""
    worlds: dict[str, WorldSpec]
    """Named worlds."""
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

    def world_of(self, process: str) -> str:
        """The name of the world a process trains or acts in."""
        p = self.processes[process]
        return p.world if p.world is not None else self.corpora[p.corpus].world

    def only(self, ids: Sequence[str]) -> "Study":
        """This (resolved) study cut down to the hypotheses `ids` and the processes they compare.

        Unit ids do not depend on which processes a study runs, so the units of a cut-down run are
        the same rows a later run of the whole profile finds already stored."""
        known = [h.id for h in self.hypotheses]
        for hid in ids:
            if hid not in known:
                where = f" under profile {self.profile!r}" if self.profile else ""
                raise StudyError(f"{self.source or '<study>'}: --only {hid!r} is not a hypothesis of this study{where}; known: {_known(known)}")
        hypotheses = [h for h in self.hypotheses if h.id in ids]
        needed = {p for h in hypotheses for p in h.processes()}
        return self.model_copy(
            update={"hypotheses": hypotheses, "processes": {n: p for n, p in self.processes.items() if n in needed}}
        )


# ------------------------------------------------------------------------------------------------
# loading


class _Problem(Exception):
    """A cross-reference problem at a field path (turned into one StudyError line)."""

    def __init__(self, loc: str, message: str):
        super().__init__(f"{loc}: {message}")

    @classmethod
    def of(cls, e: ValidationError, model: type[BaseModel], prefix: str, suffix: str = "") -> "_Problem":
        """The first error of validating `model` at the field path `prefix`."""
        loc, _, message = _describe(e, model, tuple(prefix.split("."))).partition(": ")
        return cls(loc, message + suffix)


def load_study(path: str | Path, profile: str | None = None, only: Sequence[str] | None = None) -> Study:
    """Read, validate and resolve a study file (every problem raises one-line `StudyError`).

    `only`: keep just these hypotheses and the processes they need (`Study.only`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise StudyError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StudyError(f"{path}: cannot read it ({e.__class__.__name__}: {e})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise StudyError(_one_line(f"{path}: not valid YAML: {where}{problem}")) from None
    study = study_from_dict(raw, profile, source=str(path))
    return study.only(only) if only else study


def study_from_dict(raw: Any, profile: str | None = None, source: str = "<study>") -> Study:
    """`load_study` for an already-parsed mapping (tests, notebooks)."""
    if not isinstance(raw, dict):
        raise StudyError(f"{source}: a study file must be a mapping (name:, seeds:, worlds:, processes: …), got {type(raw).__name__}")
    for key in ("profile", "source"):
        if key in raw:
            raise StudyError(f"{source}: {key}: is set by the loader, not in the file (choose a profile on the command line)")
    try:
        study = Study.model_validate(raw)
    except ValidationError as e:
        raise StudyError(_one_line(f"{source}: {_describe(e, Study)}")) from None
    if profile is not None and profile not in study.profiles:
        raise StudyError(f"{source}: profile {profile!r} is not in the study; known: {_known(study.profiles)}")
    try:
        resolved = {p: _resolve(study, p) for p in [None, *study.profiles]}
    except _Problem as e:
        raise StudyError(_one_line(f"{source}: {e}")) from None
    return resolved[profile].model_copy(update={"source": source})


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _short(v: Any, limit: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 1] + "…"


def _describe(e: ValidationError, root: type[BaseModel], prefix: tuple = ()) -> str:
    """The first error of a ValidationError as `path: problem` (plus how many others)."""
    errors = e.errors(include_url=False)
    err = errors[0]
    loc = tuple(prefix) + tuple(err["loc"])
    where = ".".join(str(x) for x in loc) or "(top level)"
    typ, msg = err["type"], err["msg"]
    if typ == "extra_forbidden":
        parent = _model_at(root, err["loc"][:-1])
        allowed = f"; allowed: {_known(parent.model_fields)}" if parent is not None else ""
        text = f"{where}: unknown key {err['loc'][-1]!r}{allowed}"
    elif typ == "missing":
        text = f"{where}: required but missing"
    elif typ == "value_error":
        text = f"{where}: {msg.removeprefix('Value error, ')}"
    elif typ == "literal_error":
        text = f"{where}: {_short(err.get('input'))} is not allowed; {msg.replace('Input should be', 'allowed:')}"
    else:
        text = f"{where}: {_short(err.get('input'))} is not allowed: {msg}"
    if isinstance(err.get("input"), bool) and typ not in ("bool_type", "bool_parsing"):
        text += " (YAML reads yes/no/on/off/true/false as booleans: quote it)"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model at a location of the validated data, by walking the annotations."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif origin in (list, tuple):
            tp = typing.get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    args = typing.get_args(tp)
    if args and typing.get_origin(tp) not in (dict, list, tuple, Literal):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            return models[0]
    return tp


def _resolve(study: Study, profile: str | None) -> Study:
    """The study as run under `profile`: cross-checked, references substituted, defaults filled."""
    at = f"profiles.{profile}." if profile is not None else ""
    prof = study.profiles[profile] if profile is not None else Profile()

    # processes and hypotheses this profile runs
    for i, name in enumerate(prof.processes or []):
        if name not in study.processes:
            raise _Problem(f"{at}processes.{i}", f"{name!r} is not a process; known: {_known(study.processes)}")
    run = [p for p in study.processes if prof.processes is None or p in prof.processes]
    for name in prof.sweep:
        if name not in run:
            raise _Problem(f"{at}sweep.{name}", f"{name!r} is not a process this profile runs; known: {_known(run)}")
        for path, values in prof.sweep[name].items():
            try:
                _check_sweep_entry(path, values)
            except ValueError as e:
                raise _Problem(f"{at}sweep.{name}", str(e)) from None
    ids = [h.id for h in study.hypotheses]
    for i, hid in enumerate(ids):
        if hid in ids[:i]:
            raise _Problem(f"hypotheses.{i}.id", f"{hid!r} is used twice; hypothesis ids must be unique")
    for i, hid in enumerate(prof.hypotheses or []):
        if hid not in ids:
            raise _Problem(f"{at}hypotheses.{i}", f"{hid!r} is not a hypothesis; known: {_known(ids)}")

    # scale: study values, kinds' defaults, then the profile's
    kinds = {study.processes[p].kind for p in study.processes}
    scale: dict[str, int | float] = {}
    for k in sorted(kinds):
        scale.update(PROCESSES[k].scale)
    scale.update(study.scale)
    for k in prof.scale:
        if k not in scale:
            raise _Problem(f"{at}scale.{k}", f"{k!r} is not a scale value of the study or its process kinds; known: {_known(scale)}")
    scale.update(prof.scale)

    def subst(v: Any, loc: str) -> Any:
        m = SCALE_REF.match(v) if isinstance(v, str) else None
        if m is None:
            return v
        if m.group(1) not in scale:
            raise _Problem(loc, f"{v!r} names no scale value; known: {_known(scale)}")
        return scale[m.group(1)]

    # worlds, corpora, lenses
    corpora = {}
    for name, c in study.corpora.items():
        if c.world not in study.worlds:
            raise _Problem(f"corpora.{name}.world", f"{c.world!r} is not a world; known: {_known(study.worlds)}")
        episodes = subst(c.episodes, f"corpora.{name}.episodes")
        if not (isinstance(episodes, int) and not isinstance(episodes, bool) and episodes >= 1):
            raise _Problem(
                f"corpora.{name}.episodes", f"{c.episodes} = {episodes!r} ({at}scale) is not allowed: episodes must be a positive integer"
            )
        corpora[name] = c.model_copy(update={"episodes": episodes})
    lenses = {}
    for name, settings in study.lenses.items():
        if name not in LENSES:
            raise _Problem(f"lenses.{name}", f"{name!r} is not a lens; known: {_known(LENSES)}")
        try:
            lenses[name] = LENSES[name].settings.model_validate(settings).model_dump(mode="json")
        except ValidationError as e:
            raise _Problem.of(e, LENSES[name].settings, f"lenses.{name}") from None

    # processes
    processes = {}
    for name in run:
        p = study.processes[name]
        kind = PROCESSES[p.kind]
        loc = f"processes.{name}"
        for ref, pool, label in (
            (p.world, study.worlds, "world"),
            (p.eval_world, study.worlds, "eval_world"),
            (p.corpus, study.corpora, "corpus"),
        ):
            if ref is not None and ref not in pool:
                raise _Problem(f"{loc}.{label}", f"{ref!r} is not a {label.replace('eval_', '')}; known: {_known(pool)}")
        if p.world is None and p.corpus is None:
            raise _Problem(loc, "names neither a world nor a corpus; give world: or corpus:")
        if kind.needs_corpus and p.corpus is None:
            raise _Problem(f"{loc}.corpus", f"process kind {p.kind!r} trains on a corpus; give corpus: (known: {_known(study.corpora)})")
        for lens in kind.lenses:
            if lens not in LENSES:
                raise _Problem(f"{loc}.kind", f"process kind {p.kind!r} reads lens {lens!r}, which is not registered")
        sweep = {**p.sweep, **prof.sweep.get(name, {})}
        params = {k: subst(v, f"{loc}.params.{k}") for k, v in p.params.items()}
        world_name = p.world if p.world is not None else study.corpora[p.corpus].world
        _check_sweep_paths(sweep, kind, p, f"{at if name in prof.sweep else ''}{loc}.sweep")
        _check_params(kind, params, sweep, loc)
        _check_worlds(study.worlds[world_name], sweep, f"{loc}.sweep", world_name)
        if p.corpus is not None:
            _check_corpora(corpora[p.corpus], sweep, f"{loc}.sweep")
        processes[name] = p.model_copy(update={"params": params, "sweep": sweep})

    # hypotheses
    hypotheses = []
    for i, h in enumerate(study.hypotheses):
        loc = f"hypotheses.{i}"
        missing = [p for p in h.processes() if p not in study.processes]
        if missing:
            where = f"{loc}.compare" if h.compare is not None else f"{loc}.trend.process"
            raise _Problem(where, f"{missing[0]!r} is not a process; known: {_known(study.processes)}")
        if prof.hypotheses is not None and h.id not in prof.hypotheses:
            continue
        if any(p not in processes for p in h.processes()):
            if prof.hypotheses is not None:
                raise _Problem(
                    f"{at}hypotheses",
                    f"{h.id} needs process(es) {[p for p in h.processes() if p not in processes]}, which this profile does not run",
                )
            continue
        _check_hypothesis(h, processes, loc)
        hypotheses.append(h)

    return study.model_copy(
        update={
            "seeds": prof.seeds or study.seeds,
            "scale": scale,
            "corpora": corpora,
            "lenses": lenses,
            "processes": processes,
            "hypotheses": hypotheses,
            "profile": profile,
        }
    )


def _check_sweep_paths(sweep: dict[str, list], kind: ProcessKind, p: ProcessSpec, loc: str) -> None:
    for path in sweep:
        root, _, field = path.partition(".")
        if root == "world" and field not in WORLD_KNOBS:
            raise _Problem(f"{loc}.{path}", f"{field!r} is not a world knob; known: {_known(WORLD_KNOBS)}")
        if root == "corpus":
            if p.corpus is None:
                raise _Problem(f"{loc}.{path}", "the process has no corpus to sweep")
            if field not in CORPUS_FIELDS:
                raise _Problem(f"{loc}.{path}", f"{field!r} is not a corpus field; known: {_known(CORPUS_FIELDS)}")
        if root == "params" and field not in kind.params.model_fields:
            raise _Problem(
                f"{loc}.{path}", f"{field!r} is not a parameter of kind {kind.name!r}; known: {_known(kind.params.model_fields)}"
            )


def _points(sweep: dict[str, list], root: str) -> list[dict[str, Any]]:
    """Every combination of the sweep's values under `root` (field -> value)."""
    keys = [k for k in sweep if k.startswith(root + ".")]
    return [{k.split(".", 1)[1]: v for k, v in zip(keys, combo)} for combo in itertools.product(*(sweep[k] for k in keys))]


def _check_params(kind: ProcessKind, params: dict, sweep: dict, loc: str) -> None:
    for point in _points(sweep, "params"):
        try:
            kind.params.model_validate({**params, **point})
        except ValidationError as e:
            raise _Problem.of(e, kind.params, f"{loc}.params", f" (at sweep point {point})" if point else "") from None


def _check_worlds(world: WorldSpec, sweep: dict, loc: str, name: str) -> None:
    for point in _points(sweep, "world"):
        if point:
            try:
                world.build(**point)
            except ValueError as e:
                raise _Problem(loc, f"world {name!r} with {point}: {e}") from None


def _check_corpora(corpus: CorpusSpec, sweep: dict, loc: str) -> None:
    for point in _points(sweep, "corpus"):
        if point:
            try:
                CorpusSpec.model_validate({**corpus.model_dump(), **point})
            except ValidationError as e:
                raise _Problem(loc, f"corpus with {point}: {_describe(e, CorpusSpec)}") from None


def _check_hypothesis(h: Hypothesis, processes: dict[str, ProcessSpec], loc: str) -> None:
    for p in h.processes():
        kind = PROCESSES[processes[p].kind]
        if h.metric not in kind.metrics:
            raise _Problem(
                f"{loc}.metric", f"{h.metric!r} is not a metric of process {p!r} (kind {kind.name}); known: {_known(kind.metrics)}"
            )
    groups = [("compare.a", h.compare.a), ("compare.b", h.compare.b)] if h.compare is not None else [("trend", h.trend)]
    for gloc, g in groups:
        sweep = processes[g.process].sweep
        for k, v in g.where.items():
            if k not in sweep:
                raise _Problem(f"{loc}.{gloc}.where.{k}", f"{k!r} is not swept by process {g.process!r}; its sweep keys: {_known(sweep)}")
            for x in v if isinstance(v, list) else [v]:
                if x not in sweep[k]:
                    raise _Problem(f"{loc}.{gloc}.where.{k}", f"{x!r} is not a swept value; allowed: {_known(sweep[k])}")
    if h.trend is not None:
        t, sweep = h.trend, processes[h.trend.process].sweep
        if t.knob not in sweep:
            raise _Problem(f"{loc}.trend.knob", f"{t.knob!r} is not swept by process {t.process!r}; its sweep keys: {_known(sweep)}")
        if t.knob in t.where:
            raise _Problem(f"{loc}.trend.where.{t.knob}", "the trend's knob cannot also be fixed by where")
        values = sweep[t.knob]
        if not all(isinstance(v, (int, float)) for v in values):
            raise _Problem(f"{loc}.trend.knob", f"{t.knob!r} has non-numeric values {values}; a trend needs numbers (or booleans)")
        if len(values) < 2:
            raise _Problem(f"{loc}.trend.knob", f"{t.knob!r} has one value {values}; a trend needs at least two")
