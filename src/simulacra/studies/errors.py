"""Study errors: every problem with a study is one `StudyError` whose message is one line naming the
file, the field path, the bad value and what is allowed.

pydantic reports a `ValidationError` as a multi-line list of every problem; `describe` turns its
first error into `path: problem` (an unknown key names the keys allowed there, a bad value is
quoted, and the count of further problems is added). `Problem` carries a cross-reference problem
found while resolving a study (an unknown world, a sweep value that is not swept …) up to
`load_study`, which prefixes the file name.
"""

from __future__ import annotations

import typing
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ValidationError


class StudyError(ValueError):
    """A study that cannot be loaded or run; the message is one line naming the problem."""


class Problem(Exception):
    """A problem at a field path of the study file (turned into one StudyError line)."""

    def __init__(self, loc: str, message: str):
        super().__init__(f"{loc}: {message}")

    @classmethod
    def of(cls, e: ValidationError, model: type[BaseModel], prefix: str, suffix: str = "") -> "Problem":
        """The first error of validating `model` at the field path `prefix`."""
        loc, _, message = describe(e, model, tuple(prefix.split("."))).partition(": ")
        return cls(loc, message + suffix)


def known(names: Iterable) -> str:
    """Names for a "known: …" list, or "(none)"."""
    names = list(names)
    return ", ".join(str(n) for n in names) if names else "(none)"


def one_line(text: str) -> str:
    return " ".join(text.split())


def _short(v: Any, limit: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 1] + "…"


def describe(e: ValidationError, root: type[BaseModel], prefix: tuple = ()) -> str:
    """The first error of a ValidationError as `path: problem` (plus how many others)."""
    errors = e.errors(include_url=False)
    err = errors[0]
    loc = tuple(prefix) + tuple(err["loc"])
    where = ".".join(str(x) for x in loc) or "(top level)"
    typ, msg = err["type"], err["msg"]
    if typ == "extra_forbidden":
        parent = _model_at(root, err["loc"][:-1])
        allowed = f"; allowed: {known(parent.model_fields)}" if parent is not None else ""
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
    """The model inside an optional or union annotation (`Compare | None` -> `Compare`)."""
    args = typing.get_args(tp)
    if args and typing.get_origin(tp) not in (dict, list, tuple, Literal):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if models:
            return models[0]
    return tp
