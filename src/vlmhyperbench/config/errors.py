"""Config errors that name the file and the key path, and the known names for unknown ones."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


class ConfigError(ValueError):
    """A bad config or registry entry. ``str(err)`` is ready to show to a user.

    ``problems`` (when the error came from a validation) holds each problem as
    ``(file, key path, message)``, so that a caller who knows better where a key came from
    (snakemake's ``--configfile`` layers) can name the right file: :meth:`located`.
    """

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)

    def located(self, path: Path | str, sources: ConfigSources) -> ConfigError:
        """The same error with the problems reported against ``path`` (the merged config)
        naming the file each key came from instead (plain ``path: key.path: …`` lines too)."""
        shown = str(path)
        if self.problems:
            problems = [
                Problem(sources.file_of(p.loc) if p.path == shown else p.path, p.loc, p.message)
                for p in self.problems
            ]
            return ConfigError("\n".join(map(str, problems)), problems)
        lines = []
        for line in str(self).splitlines():
            where, sep, message = line.removeprefix(f"{shown}: ").partition(": ")
            loc = _parse_key_path(where) if line.startswith(f"{shown}: ") and sep else None
            line = line if loc is None else f"{sources.file_of(loc)}: {where}: {message}"
            # A registry entry's problem made by the config's overrides: which config file.
            line = _OVERRIDE_NOTE.sub(
                lambda m: f"(after {m[1]} from {sources.file_of(_parse_key_path(m[1]) or ())})",
                line,
            )
            lines.append(line)
        return ConfigError("\n".join(lines))


@dataclass(frozen=True)
class Problem:
    path: str
    loc: tuple[str | int, ...]
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {key_path(self.loc)}: {self.message}"


def key_path(loc: Iterable[str | int]) -> str:
    """``("engine_args", "max_model_len")`` → ``engine_args.max_model_len``; ints become ``[i]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<root>"


_OVERRIDE_NOTE = re.compile(r"\(after (overrides\.[\w.-]+) from the config\)")


def _parse_key_path(text: str) -> tuple[str | int, ...] | None:
    """``models[0]`` → ``("models", 0)``: the inverse of :func:`key_path`; None if ``text``
    is not a key path."""
    if not re.fullmatch(r"[\w-]+(\[\d+\]|\.[\w-]+)*", text):
        return None
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[\w-]+", text))


def _expected(error: dict) -> str:
    """A short 'expected …' phrase for the common pydantic error types."""
    kind = error["type"]
    simple = {
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
        "missing": "required key is missing",
        "extra_forbidden": "unknown key",
    }
    if kind in simple:
        phrase = simple[kind]
        if kind not in ("missing", "extra_forbidden"):
            phrase += f", got {error.get('input')!r}"
        return phrase
    # Bounds read as the JSON schema's messages (check_schema) read.
    ctx = error.get("ctx") or {}
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, name = bounds[kind]
        return f"must be {sign} {ctx.get(name)}, got {error.get('input')!r}"
    if kind == "too_short" and "min_length" in ctx:
        got = len(error["input"]) if hasattr(error.get("input"), "__len__") else "fewer"
        return f"must have at least {ctx['min_length']} item(s), got {got}"
    return error["msg"]


def from_validation_error(path: Path | str, exc: ValidationError, prefix: str = "") -> ConfigError:
    """One line per problem, e.g.
    ``config/models/x.yaml: engine_args.max_model_len: expected int, got 'a'``."""
    problems = []
    for error in exc.errors():
        loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        full = (*([prefix] if prefix else []), *loc)
        problems.append(Problem(str(path), full, _expected(error)))
    return ConfigError("\n".join(map(str, problems)), problems)


def unknown_name(path: Path | str, where: str, kind: str, name: str, known: Iterable[str]) -> str:
    known_list = ", ".join(sorted(known)) or "(none registered)"
    return f"{path}: {where}: unknown {kind} {name!r}; known {kind}s: {known_list}"


# ------------------------------------------------------------------ the config's own files

_JSON_TYPES = {
    "integer": "int",
    "number": "number",
    "string": "string",
    "array": "list",
    "object": "mapping",
    "boolean": "bool",
    "null": "null",
}


@dataclass(frozen=True)
class ConfigSources:
    """Where the keys of a merged config came from: ``layers`` in merge order (label, data),
    each overriding the ones before (snakemake: the Snakefile's ``configfile:``, the
    ``--configfile`` files in order, then ``--config``). ``main`` is named for a key that no
    layer holds (a required key that is missing)."""

    layers: tuple[tuple[str, Any], ...]
    main: str

    @classmethod
    def from_files(
        cls, files: Sequence[Path | str], overrides: Mapping[str, Any] | None = None
    ) -> ConfigSources:
        layers: list[tuple[str, Any]] = []
        for file in files:
            try:
                data = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                data = None
            layers.append((_shown(file), data))
        main = layers[-1][0] if layers else "config/config.yaml"
        if overrides:
            layers.append(("--config", dict(overrides)))
        return cls(tuple(layers), main)

    def file_of(self, loc: Sequence[str | int]) -> str:
        """The last layer that sets ``loc`` (or, failing that, its closest parent)."""
        for depth in range(len(loc), 0, -1):
            for label, data in reversed(self.layers):
                if _holds(data, loc[:depth]):
                    return label
        return self.main


def _shown(file: Path | str) -> str:
    """A path as the user wrote it: relative to the working directory when inside it."""
    path = Path(file)
    if path.is_absolute():
        with contextlib.suppress(ValueError):
            return str(path.relative_to(Path.cwd()))
    return str(file)


def _holds(data: Any, loc: Sequence[str | int]) -> bool:
    for part in loc:
        in_mapping = isinstance(data, Mapping) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_mapping or in_list):
            return False
        data = data[part]
    return True


def check_schema(
    config: Mapping[str, Any], schema_path: Path | str, sources: ConfigSources
) -> None:
    """Validate ``config`` against the JSON schema (``snakemake --lint``/``validate()``'s) and
    raise one :class:`ConfigError` with a plain line per problem, the same
    ``file: key.path: expected int, got 'four'`` as the pydantic checks, each naming the file
    the key came from - instead of jsonschema's dump of the schema."""
    from jsonschema import Draft202012Validator

    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    problems: list[Problem] = []
    for error in Draft202012Validator(schema).iter_errors(dict(config)):
        for loc, message in _schema_messages(error):
            problems.append(Problem(sources.file_of(loc), loc, message))
    if problems:
        problems.sort(key=lambda p: key_path(p.loc))
        raise ConfigError("\n".join(map(str, problems)), problems)


def _schema_messages(error: Any) -> list[tuple[tuple[str | int, ...], str]]:
    loc = tuple(error.absolute_path)
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "type":
        names = [value] if isinstance(value, str) else list(value)
        expected = " or ".join(_JSON_TYPES.get(n, n) for n in names)
        return [(loc, f"expected {expected}, got {instance!r}")]
    if kind == "required":
        return [((*loc, key), "required key is missing") for key in value if key not in instance]
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extra = [k for k in instance if k not in known]
        hint = f"; known keys: {', '.join(known)}" if known else ""
        return [((*loc, key), f"unknown key{hint}") for key in extra]
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    if kind in bounds:
        return [(loc, f"must be {bounds[kind]} {value}, got {instance!r}")]
    if kind == "minItems":
        return [(loc, f"must have at least {value} item(s), got {len(instance)}")]
    if kind == "enum":
        return [(loc, f"expected one of {', '.join(map(repr, value))}, got {instance!r}")]
    return [(loc, error.message)]
