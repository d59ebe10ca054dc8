"""Config errors that name the file and the key path, and the known names for unknown ones."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError


class ConfigError(ValueError):
    """A bad config or registry entry. ``str(err)`` is ready to show to a user."""


def key_path(loc: Iterable[str | int]) -> str:
    """``("engine_args", "max_model_len")`` → ``engine_args.max_model_len``; ints become ``[i]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<root>"


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
    return error["msg"]


def from_validation_error(path: Path | str, exc: ValidationError, prefix: str = "") -> ConfigError:
    """One line per problem, e.g.
    ``config/models/x.yaml: engine_args.max_model_len: expected int, got 'a'``."""
    lines = []
    for error in exc.errors():
        loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        where = key_path([*([prefix] if prefix else []), *loc])
        lines.append(f"{path}: {where}: {_expected(error)}")
    return ConfigError("\n".join(lines))


def unknown_name(path: Path | str, where: str, kind: str, name: str, known: Iterable[str]) -> str:
    known_list = ", ".join(sorted(known)) or "(none registered)"
    return f"{path}: {where}: unknown {kind} {name!r}; known {kind}s: {known_list}"
