"""Loading a study: read the YAML file, validate it, resolve it for one profile.

`load_study(path, profile)` reads the file (a key written twice in one mapping is an error, not
the last value silently winning), validates *everything* — structure, cross-references,
every sweep point's world, corpus and parameters, each hypothesis's metric and groups, and every
profile, not only the one asked for — and returns the `Study` resolved for that profile: its
seeds, its scale values substituted for `scale.<name>` references, only the processes and
hypotheses it runs. Any problem raises one `StudyError` whose message is one line naming the
file, the field path, the bad value and what is allowed, before anything touches a results store.

Resolving runs in named steps, each raising a `Problem` at the first thing wrong: the processes
and hypotheses the profile selects, the number of units (before any sweep point is visited), the
scale, the corpora, the lenses, each process, then the hypotheses.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Sequence

import yaml
from pydantic import ValidationError

from simulacra.studies.errors import Problem, StudyError, describe, known, one_line
from simulacra.studies.registry import LENSES, PROCESSES, ProcessKind
from simulacra.studies.schema import (
    CORPUS_FIELDS,
    MAX_EPISODES,
    MAX_UNITS,
    SCALE_REF,
    WORLD_KNOBS,
    CorpusSpec,
    Hypothesis,
    ProcessSpec,
    Profile,
    Study,
    WorldSpec,
    check_sweep_entry,
)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key written twice in one mapping is an error (PyYAML
    keeps the last value silently: `seeds: 3` … `seeds: 30` would run 30 seeds)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges keys that this mapping may override
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the base class says so
                continue
            if seen is not key_node:
                problem = f"key {key!r} is written twice (first on line {seen.start_mark.line + 1}); each key may appear once"
                raise yaml.constructor.ConstructorError(problem=problem, problem_mark=key_node.start_mark)
        return super().construct_mapping(node, deep)


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
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise StudyError(one_line(f"{path}: not valid YAML: {where}{problem}")) from None
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
        raise StudyError(one_line(f"{source}: {describe(e, Study)}")) from None
    if profile is not None and profile not in study.profiles:
        raise StudyError(f"{source}: profile {profile!r} is not in the study; known: {known(study.profiles)}")
    try:
        resolved = {p: _resolve(study, p) for p in [None, *study.profiles]}
    except Problem as e:
        raise StudyError(one_line(f"{source}: {e}")) from None
    return resolved[profile].model_copy(update={"source": source})


def _resolve(study: Study, profile: str | None) -> Study:
    """The study as run under `profile`: cross-checked, references substituted."""
    at = f"profiles.{profile}." if profile is not None else ""
    prof = study.profiles[profile] if profile is not None else Profile()
    run = _processes_run(study, prof, at)
    _check_unit_count(study, prof, run, at)
    _check_hypothesis_ids(study, prof, at)
    scale = _scale(study, prof, at)
    corpora = _corpora(study, scale, at)
    lenses = _lenses(study)
    processes = {name: _process(study, name, prof, scale, corpora, at) for name in run}
    return study.model_copy(
        update={
            "seeds": prof.seeds or study.seeds,
            "scale": scale,
            "corpora": corpora,
            "lenses": lenses,
            "processes": processes,
            "hypotheses": _hypotheses(study, prof, processes, at),
            "profile": profile,
        }
    )


def _processes_run(study: Study, prof: Profile, at: str) -> list[str]:
    """The processes the profile runs, in the study's order (and its sweep overrides checked)."""
    for i, name in enumerate(prof.processes or []):
        if name not in study.processes:
            raise Problem(f"{at}processes.{i}", f"{name!r} is not a process; known: {known(study.processes)}")
    run = [p for p in study.processes if prof.processes is None or p in prof.processes]
    for name in prof.sweep:
        if name not in run:
            raise Problem(f"{at}sweep.{name}", f"{name!r} is not a process this profile runs; known: {known(run)}")
        for path, values in prof.sweep[name].items():
            try:
                check_sweep_entry(path, values)
            except ValueError as e:
                raise Problem(f"{at}sweep.{name}", str(e)) from None
    return run


def _check_unit_count(study: Study, prof: Profile, run: list[str], at: str) -> None:
    """At most `MAX_UNITS` units (seeds × sweep points of each process run), counted before any
    sweep point is visited."""
    seeds = prof.seeds or study.seeds
    points = {name: math.prod(len(v) for v in {**study.processes[name].sweep, **prof.sweep.get(name, {})}.values()) for name in run}
    total = seeds * sum(points.values())
    if total > MAX_UNITS:
        largest = max(points, key=points.get)
        raise Problem(
            f"{at}sweep.{largest}" if largest in prof.sweep else f"processes.{largest}.sweep",
            f"{seeds} seed(s) × {points[largest]:_} sweep point(s) = {seeds * points[largest]:_} units ({total:_} in the study); "
            f"a study may have at most {MAX_UNITS:_} units",
        )


def _check_hypothesis_ids(study: Study, prof: Profile, at: str) -> None:
    ids = [h.id for h in study.hypotheses]
    for i, hid in enumerate(ids):
        if hid in ids[:i]:
            raise Problem(f"hypotheses.{i}.id", f"{hid!r} is used twice; hypothesis ids must be unique")
    for i, hid in enumerate(prof.hypotheses or []):
        if hid not in ids:
            raise Problem(f"{at}hypotheses.{i}", f"{hid!r} is not a hypothesis; known: {known(ids)}")


def _scale(study: Study, prof: Profile, at: str) -> dict[str, int | float]:
    """Scale values: the process kinds' defaults, then the study's, then the profile's."""
    scale: dict[str, int | float] = {}
    for k in sorted({p.kind for p in study.processes.values()}):
        scale.update(PROCESSES[k].scale)
    scale.update(study.scale)
    for k in prof.scale:
        if k not in scale:
            raise Problem(f"{at}scale.{k}", f"{k!r} is not a scale value of the study or its process kinds; known: {known(scale)}")
    scale.update(prof.scale)
    return scale


def _substitute(v: Any, loc: str, scale: dict[str, int | float]) -> Any:
    """`v`, or the scale value a `scale.<name>` reference names."""
    m = SCALE_REF.match(v) if isinstance(v, str) else None
    if m is None:
        return v
    if m.group(1) not in scale:
        raise Problem(loc, f"{v!r} names no scale value; known: {known(scale)}")
    return scale[m.group(1)]


def _corpora(study: Study, scale: dict[str, int | float], at: str) -> dict[str, CorpusSpec]:
    corpora = {}
    for name, c in study.corpora.items():
        if c.world not in study.worlds:
            where = f"known: {known(study.worlds)}" if study.worlds else "the study has no worlds: section"
            raise Problem(f"corpora.{name}.world", f"{c.world!r} is not a world; {where}")
        episodes = _substitute(c.episodes, f"corpora.{name}.episodes", scale)
        if not (isinstance(episodes, int) and not isinstance(episodes, bool) and 1 <= episodes <= MAX_EPISODES):
            raise Problem(
                f"corpora.{name}.episodes",
                f"{c.episodes} = {episodes!r} ({at}scale) is not allowed: episodes must be an integer in 1..{MAX_EPISODES:_}",
            )
        corpora[name] = c.model_copy(update={"episodes": episodes})
    return corpora


def _lenses(study: Study) -> dict[str, dict[str, Any]]:
    """Each named lens's settings, validated by its model (as JSON, defaults filled)."""
    lenses = {}
    for name, settings in study.lenses.items():
        if name not in LENSES:
            raise Problem(f"lenses.{name}", f"{name!r} is not a lens; known: {known(LENSES)}")
        try:
            lenses[name] = LENSES[name].settings.model_validate(settings).model_dump(mode="json")
        except ValidationError as e:
            raise Problem.of(e, LENSES[name].settings, f"lenses.{name}") from None
    return lenses


def _process(study: Study, name: str, prof: Profile, scale: dict, corpora: dict[str, CorpusSpec], at: str) -> ProcessSpec:
    """The process `name` as the profile runs it: references checked, the profile's sweep merged,
    scale values substituted, every sweep point's params, world and corpus validated."""
    p = study.processes[name]
    kind = PROCESSES[p.kind]
    loc = f"processes.{name}"
    references = ((p.world, study.worlds, "world"), (p.eval_world, study.worlds, "eval_world"), (p.corpus, study.corpora, "corpus"))
    for ref, pool, label in references:
        if ref is not None and ref not in pool:
            what = label.replace("eval_", "")
            where = f"known: {known(pool)}" if pool else f"the study has no {'worlds' if what == 'world' else 'corpora'}: section"
            raise Problem(f"{loc}.{label}", f"{ref!r} is not a {what}; {where}")
    if not kind.needs_world:
        for ref, label in ((p.world, "world"), (p.eval_world, "eval_world"), (p.corpus, "corpus")):
            if ref is not None:
                raise Problem(f"{loc}.{label}", f"process kind {p.kind!r} takes no {label}: its params say what it makes")
    elif p.world is None and p.corpus is None:
        raise Problem(loc, "names neither a world nor a corpus; give world: or corpus:")
    if kind.needs_corpus and p.corpus is None:
        raise Problem(f"{loc}.corpus", f"process kind {p.kind!r} trains on a corpus; give corpus: (known: {known(study.corpora)})")
    for lens in kind.lenses:
        if lens not in LENSES:
            raise Problem(f"{loc}.kind", f"process kind {p.kind!r} reads lens {lens!r}, which is not registered")
    sweep = {**p.sweep, **prof.sweep.get(name, {})}
    params = {k: _substitute(v, f"{loc}.params.{k}", scale) for k, v in p.params.items()}
    world_name = study.world_of(name)
    _check_model_options(kind, params, sweep, loc)
    _check_sweep_paths(sweep, kind, p, f"{at if name in prof.sweep else ''}{loc}.sweep")
    _check_params(kind, params, sweep, loc)
    if world_name is not None:
        _check_worlds(study.worlds[world_name], sweep, f"{loc}.sweep", world_name)
        if kind.check_world is not None:
            for point in _points(sweep, "world"):
                try:
                    kind.check_world(study.worlds[world_name].build(**point))
                except ValueError as e:
                    at_point = f" (at sweep point {point})" if point else ""
                    raise Problem(f"{loc}.kind", f"kind {p.kind!r} cannot train in world {world_name!r}{at_point}: {e}") from None
    if p.corpus is not None:
        _check_corpora(corpora[p.corpus], sweep, f"{loc}.sweep")
    return p.model_copy(update={"params": params, "sweep": sweep})


def _hypotheses(study: Study, prof: Profile, processes: dict[str, ProcessSpec], at: str) -> list[Hypothesis]:
    """The hypotheses the profile tests: those it names (or all), whose processes it runs."""
    hypotheses = []
    for i, h in enumerate(study.hypotheses):
        loc = f"hypotheses.{i}"
        missing = [p for p in h.processes() if p not in study.processes]
        if missing:
            where = f"{loc}.compare" if h.compare is not None else f"{loc}.trend.process"
            raise Problem(where, f"{missing[0]!r} is not a process; known: {known(study.processes)}")
        if prof.hypotheses is not None and h.id not in prof.hypotheses:
            continue
        if any(p not in processes for p in h.processes()):
            if prof.hypotheses is not None:
                raise Problem(
                    f"{at}hypotheses",
                    f"{h.id} needs process(es) {[p for p in h.processes() if p not in processes]}, which this profile does not run",
                )
            continue
        _check_hypothesis(h, processes, loc)
        hypotheses.append(h)
    return hypotheses


def _check_sweep_paths(sweep: dict[str, list], kind: ProcessKind, p: ProcessSpec, loc: str) -> None:
    for path in sweep:
        root, _, field = path.partition(".")
        if root == "world" and not kind.needs_world:
            raise Problem(f"{loc}.{path}", f"process kind {kind.name!r} has no world to sweep")
        if root == "world" and field not in WORLD_KNOBS:
            raise Problem(f"{loc}.{path}", f"{field!r} is not a world knob; known: {known(WORLD_KNOBS)}")
        if root == "corpus":
            if p.corpus is None:
                raise Problem(f"{loc}.{path}", "the process has no corpus to sweep")
            if field not in CORPUS_FIELDS:
                raise Problem(f"{loc}.{path}", f"{field!r} is not a corpus field; known: {known(CORPUS_FIELDS)}")
        if root == "params" and field not in kind.params.model_fields:
            raise Problem(f"{loc}.{path}", f"{field!r} is not a parameter of kind {kind.name!r}; known: {known(kind.params.model_fields)}")


def _points(sweep: dict[str, list], root: str) -> list[dict[str, Any]]:
    """Every combination of the sweep's values under `root` (field -> value)."""
    keys = [k for k in sweep if k.startswith(root + ".")]
    return [{k.split(".", 1)[1]: v for k, v in zip(keys, combo)} for combo in itertools.product(*(sweep[k] for k in keys))]


MODEL_OPTIONS = {
    "myopic": "cannot train myopically: it trains no sequence model by prediction",
    "future_heads": "cannot give a model more output heads: it trains no sequence model by prediction",
}
"""Options of the sequence models, and what a kind without such a model says when given one."""


def _check_model_options(kind: ProcessKind, params: dict, sweep: dict, loc: str) -> None:
    for option, why in MODEL_OPTIONS.items():
        if (option in params or f"params.{option}" in sweep) and option not in kind.params.model_fields:
            able = [k.name for k in PROCESSES.values() if option in k.params.model_fields]
            raise Problem(f"{loc}.params.{option}", f"kind {kind.name!r} {why}; kinds that can: {known(able)}")


def _check_params(kind: ProcessKind, params: dict, sweep: dict, loc: str) -> None:
    for point in _points(sweep, "params"):
        try:
            kind.params.model_validate({**params, **point})
        except ValidationError as e:
            raise Problem.of(e, kind.params, f"{loc}.params", f" (at sweep point {point})" if point else "") from None


def _check_worlds(world: WorldSpec, sweep: dict, loc: str, name: str) -> None:
    for point in _points(sweep, "world"):
        if point:
            try:
                world.build(**point)
            except ValueError as e:
                raise Problem(loc, f"world {name!r} with {point}: {e}") from None


def _check_corpora(corpus: CorpusSpec, sweep: dict, loc: str) -> None:
    for point in _points(sweep, "corpus"):
        if point:
            try:
                CorpusSpec.model_validate({**corpus.model_dump(), **point})
            except ValidationError as e:
                raise Problem(loc, f"corpus with {point}: {describe(e, CorpusSpec)}") from None


def _check_hypothesis(h: Hypothesis, processes: dict[str, ProcessSpec], loc: str) -> None:
    for p in h.processes():
        kind = PROCESSES[processes[p].kind]
        if h.metric not in kind.metrics:
            message = f"{h.metric!r} is not a metric of process {p!r} (kind {kind.name}); known: {known(kind.metrics)}"
            raise Problem(f"{loc}.metric", message)
    groups = [("compare.a", h.compare.a), ("compare.b", h.compare.b)] if h.compare is not None else [("trend", h.trend)]
    if h.trend is not None and h.trend.versus is not None:
        groups.append(("trend.versus", h.trend.versus))
    for gloc, g in groups:
        sweep = processes[g.process].sweep
        for k, v in g.where.items():
            if k not in sweep:
                raise Problem(f"{loc}.{gloc}.where.{k}", f"{k!r} is not swept by process {g.process!r}; its sweep keys: {known(sweep)}")
            for x in v if isinstance(v, list) else [v]:
                if x not in sweep[k]:
                    raise Problem(f"{loc}.{gloc}.where.{k}", f"{x!r} is not a swept value; allowed: {known(sweep[k])}")
    if h.trend is not None:
        t = h.trend
        sides = [("trend", t.process, t.where)] + ([("trend.versus", t.versus.process, t.versus.where)] if t.versus is not None else [])
        for gloc, process, where in sides:
            sweep = processes[process].sweep
            if t.knob not in sweep:
                at = f"{loc}.trend.knob" if gloc == "trend" else f"{loc}.{gloc}"
                raise Problem(at, f"{t.knob!r} is not swept by process {process!r}; its sweep keys: {known(sweep)}")
            if t.knob in where:
                raise Problem(f"{loc}.{gloc}.where.{t.knob}", "the trend's knob cannot also be fixed by where")
            values = sweep[t.knob]
            if not all(isinstance(v, (int, float)) for v in values):
                raise Problem(f"{loc}.trend.knob", f"{t.knob!r} has non-numeric values {values} in process {process!r}; a trend needs numbers (or booleans)")
            if len(values) < 2:
                raise Problem(f"{loc}.trend.knob", f"{t.knob!r} has one value {values} in process {process!r}; a trend needs at least two")
        if t.versus is not None and t.versus.process == t.process and t.versus.where == t.where:
            raise Problem(f"{loc}.trend.versus", "versus names the trend's own process and sweep points: compare two different groups")
