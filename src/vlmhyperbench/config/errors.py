"""Config problems as data (file, key path, message), and the error that carries them.

Every check (pydantic's, and the cross-references between entries) makes :class:`Problem`
records; nothing is parsed back from a message. Snakemake's rules use :meth:`ConfigError.located`
to name, for each problem of the merged config, the layer its key came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from vlmhyperbench.config.sources import ConfigSources

Loc = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file: ``file: key.path: message``.

    ``loc`` is the key path (empty for the file as a whole); ``line`` a line number where the
    file is not valid YAML. ``override`` is the config's key path of an ``overrides:`` entry that
    made a registry entry invalid, and ``override_file`` the file that holds it.
    """

    file: str
    loc: Loc
    message: str
    line: int | None = None
    override: Loc = ()
    override_file: str = ""

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.loc:
            where += f": {key_path(self.loc)}"
        text = f"{where}: {self.message}"
        if self.override:
            text += f" (after {key_path(self.override)} from {self.override_file})"
        return text


class ConfigError(ValueError):
    """A bad config or registry entry. ``str(err)`` is ready to show to a user: one line per
    problem. ``problems`` holds them as data; an error made from a plain message (a prompt
    template's) has none."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            super().__init__(problems)
            self.problems: tuple[Problem, ...] = ()
        else:
            self.problems = tuple(problems)
            super().__init__("\n".join(map(str, self.problems)))

    def located(self, sources: ConfigSources) -> ConfigError:
        """The same error with each problem of the merged config (reported against
        ``sources.main``) naming the file its key came from, and an override's file too."""
        merged = str(Path(sources.main))
        problems = []
        for problem in self.problems:
            if problem.file == merged:
                problem = replace(problem, file=sources.file_of(problem.loc))
            if problem.override and problem.override_file == merged:
                problem = replace(problem, override_file=sources.file_of(problem.override))
            problems.append(problem)
        return ConfigError(problems) if problems else self


def key_path(loc: Iterable[str | int]) -> str:
    """``("engine_args", "max_model_len")`` → ``engine_args.max_model_len``; ints become ``[i]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def unknown_name(file: Path | str, loc: Loc, kind: str, name: str, known: Iterable[str]) -> Problem:
    known_list = ", ".join(sorted(known)) or "(none registered)"
    return Problem(str(file), loc, f"unknown {kind} {name!r}; known {kind}s: {known_list}")


def validated(model: type[ModelT], data: Any, file: Path | str, prefix: Loc = ()) -> ModelT:
    """``model`` validated from ``data``; a :class:`ConfigError` with one problem per pydantic
    error otherwise, each at ``prefix`` + pydantic's key path in ``file``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in _without_literal_branches(exc.errors()):
            loc = tuple(
                p for p in error["loc"] if not str(p).startswith("function-") and p != "[key]"
            )
            problems.append(Problem(str(file), (*prefix, *loc), _expected(model, loc, error)))
        raise ConfigError(problems) from exc


def _without_literal_branches(errors: list[Any]) -> list[Any]:
    """Leave out a union's literal alternative (``perf: false``) when its other branch said
    what is wrong: "Input should be False" only hides the real problem."""

    def literal_at(error: Any) -> int | None:
        steps = [str(step) for step in error["loc"]]
        return next((i for i, step in enumerate(steps) if step.startswith("literal[")), None)

    kept = []
    for error in errors:
        at = literal_at(error)
        if at is not None:
            parent = tuple(error["loc"][:at])
            if any(e is not error and tuple(e["loc"][:at]) == parent for e in errors):
                continue
        kept.append(error)
    return kept


_SIMPLE = {
    "int_parsing": "expected int",
    "int_type": "expected int",
    "int_from_float": "expected int",
    "float_parsing": "expected number",
    "float_type": "expected number",
    "bool_parsing": "expected bool",
    "bool_type": "expected bool",
    "string_type": "expected string",
    "list_type": "expected list",
    "dict_type": "expected mapping",
    "model_type": "expected mapping",
    "model_attributes_type": "expected mapping",
}
_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _expected(model: type[BaseModel], loc: Loc, error: dict) -> str:
    """A short phrase for the common pydantic error types, e.g. ``expected int, got 'a'``."""
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in _SIMPLE:
        return f"{_SIMPLE[kind]}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"{got!r} does not match {ctx.get('pattern')}"
    if kind == "value_error" and ctx.get("error") is not None:
        return str(ctx["error"])  # the validator's own words, without pydantic's "Value error, "
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        return f"unknown key; known keys: {', '.join(known)}" if known else "unknown key"
    if kind in _BOUNDS:
        sign, name = _BOUNDS[kind]
        return f"must be {sign} {ctx.get(name)}, got {got!r}"
    if kind == "too_short" and "min_length" in ctx:
        count = len(got) if hasattr(got, "__len__") else "fewer"
        return f"must have at least {ctx['min_length']} item(s), got {count}"
    return error["msg"]


def unknown_setting(model: type[BaseModel], parts: Sequence[str]) -> str | None:
    """Why ``parts`` is no setting of ``model``'s entries (``None`` if it is one): a free-form
    mapping (``mm_processor_kwargs``) takes any key below it."""
    node: Any = model
    for depth, part in enumerate(parts):
        if node is Any:
            return None
        node = next((child for m in _members(node) if (child := _child(m, part))), None)
        if node is None:
            known = _known_keys(model, tuple(parts[:depth]))
            where = ".".join(parts[:depth]) or "the top level"
            keys = f"; known keys at {where}: {', '.join(known)}" if known else ""
            return f"unknown setting {'.'.join(parts)!r}{keys}"
    return None


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys allowed in the mapping at ``loc`` of ``model``'s data (pydantic's key path:
    list indices, dict keys and a tagged union's tag are steps too)."""
    node: Any = model
    for part in loc:
        node = next((child for m in _members(node) if (child := _child(m, part))), None)
        if node is None:
            return []
    models = [m for m in _members(node) if isinstance(m, type) and issubclass(m, BaseModel)]
    return sorted(models[0].model_fields) if len(models) == 1 else []


def _members(annotation: Any) -> list[Any]:
    """The types an annotation allows: ``Annotated`` and unions unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _child(annotation: Any, part: str | int) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        if field is not None:
            return field.annotation
        tag = annotation.model_fields.get("type")
        is_tag = tag is not None and get_origin(tag.annotation) is Literal
        return annotation if is_tag and part in get_args(tag.annotation) else None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and isinstance(part, int):
        return args[0]
    if origin is dict and isinstance(part, str):
        return args[1]
    return None
