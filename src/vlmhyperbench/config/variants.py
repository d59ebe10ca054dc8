"""Sweeps: a run block's ``sweep:`` as the grid of variants of its models, and their names.

A sweep maps a setting's path to values: ``models.engine_args.psm: [3, 4, 6]``, or to labelled
values for long ones, ``tasks.prompt.system: {short: "…", formal: "…"}``. The block runs every
combination (a grid point) with each of its models. A grid point is a *variant* of the model,
named after it and the swept settings whose value differs from the model's registry entry, in
key order: ``tesseract-rus@languages=rus,psm=6``. A point that changes nothing is the model
itself, and two points with the same settings are one variant (the first name wins).

Which variants share a server is decided by :func:`server_key`: the model entry without what
its backend takes per request (``BackendSpec.per_request``).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from vlmhyperbench.config.errors import Loc, Problem, unknown_setting
from vlmhyperbench.config.schema import LABEL_PATTERN, ModelEntry, TaskEntry
from vlmhyperbench.runtime.io import stable_hash

SEPARATOR = "@"
MAX_NAME_LENGTH = 200
#: What a sweep cannot change: an entry's identity, and what decides a task's data and scores.
FIXED = {
    "models": frozenset({"name", "base"}),
    "tasks": frozenset({"name", "base", "kind", "dataset", "metrics"}),
}
ENTRY_TYPES: dict[str, type[BaseModel]] = {"models": ModelEntry, "tasks": TaskEntry}
_LABEL = re.compile(LABEL_PATTERN)
MISSING = object()


@dataclass(frozen=True)
class Axis:
    """One swept setting: its path, its short key in variant names, its labelled values (with
    where each is in the config: a list index or a label)."""

    path: str
    key: str
    values: tuple[tuple[str, Any, int | str], ...]

    @property
    def kind(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split(".")[1:])


#: One grid point: (axis, label, value) per axis.
Point = tuple[tuple[Axis, str, Any], ...]


@dataclass
class Variant:
    """A model of the run matrix as it runs: a registry entry, or a sweep's variant of one."""

    name: str
    model: str  # the registry entry it runs
    entry: ModelEntry  # that entry with the sweep's model settings
    settings: dict[str, Any] = field(default_factory=dict)  # swept values that differ
    named: dict[str, str] = field(default_factory=dict)  # their ``key=label`` in the name
    swept: dict[str, str] = field(default_factory=dict)  # label of each swept setting


def value_label(value: Any) -> str | None:
    """A value as it reads in a variant's name, or ``None`` when it needs a label."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str) and _LABEL.match(value):
        return value
    return None


def axes_of(file: str, prefix: Loc, sweep: dict[str, Any], problems: list[Problem]) -> list[Axis]:
    """The block's sweep as axes; what is wrong with a path or a value goes to ``problems``."""
    axes = []
    for path, values in sweep.items():
        where = (*prefix, "sweep", path)
        kind, *parts = path.split(".")
        if parts[0] in FIXED[kind]:
            message = f"a sweep cannot change {kind[:-1]} entries' {parts[0]}"
            problems.append(Problem(file, where, message))
            continue
        unknown = unknown_setting(ENTRY_TYPES[kind], parts)
        if unknown:
            problems.append(Problem(file, where, f"no {kind[:-1]} entry has it: {unknown}"))
            continue
        items = values.items() if isinstance(values, dict) else enumerate(values)
        labelled = []
        for position, value in items:
            label = position if isinstance(position, str) else value_label(value)
            if label is None:
                message = (
                    f"{json.dumps(value, ensure_ascii=False)[:60]} cannot be part of a variant's "
                    f"name; give the values labels: {path}: {{label: value, …}}"
                )
                problems.append(Problem(file, (*where, position), message))
            labelled.append((label, value, position))
        labels = [label for label, _, _ in labelled]
        if len(set(labels)) < len(labels):
            problems.append(Problem(file, where, f"two values read the same: {labels}"))
        axes.append(Axis(path, "", tuple(labelled)))
    keys = _short_keys([axis.path for axis in axes])
    return [Axis(axis.path, keys[axis.path], axis.values) for axis in axes]


def _short_keys(paths: list[str]) -> dict[str, str]:
    """Each path's last part, or as many of its last parts as tell it from the others."""
    keys = {}
    for path in paths:
        parts = path.split(".")
        for count in range(1, len(parts) + 1):
            key = ".".join(parts[-count:])
            others = {".".join(o.split(".")[-count:]) for o in paths if o != path}
            if key not in others:
                break
        keys[path] = key
    return keys


def grid(axes: list[Axis]) -> list[Point]:
    """Every combination of the axes' values (one empty point without a sweep)."""
    choices = [[(axis, label, value) for label, value, _ in axis.values] for axis in axes]
    return list(itertools.product(*choices))


def nested(point: Point, kind: str) -> dict[str, Any]:
    """The point's settings of ``kind`` (``models`` or ``tasks``) as a partial entry."""
    partial: dict[str, Any] = {}
    for axis, _, value in point:
        if axis.kind != kind:
            continue
        node = partial
        for part in axis.parts[:-1]:
            node = node.setdefault(part, {})
        node[axis.parts[-1]] = value
    return partial


def value_at(data: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if not isinstance(data, dict) or part not in data:
            return MISSING
        data = data[part]
    return data


def variant_name(model: str, named: list[str]) -> str:
    """``model@key=label,…`` (``named``: the ``key=label`` parts), or ``model``."""
    return f"{model}{SEPARATOR}{','.join(sorted(named))}" if named else model


def flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"dotted.path": leaf}``."""
    if not isinstance(data, dict) or not data:
        return {prefix: data} if prefix else {}
    items: dict[str, Any] = {}
    for key, value in data.items():
        items.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return items


def entry_differences(entry: BaseModel, base: BaseModel, kind: str) -> dict[str, Any]:
    """``kind.path -> value`` for every setting of ``entry`` that differs from ``base``."""
    ignored = {"name", "base", "description"}
    mine = flat(entry.model_dump(mode="json", exclude=ignored))
    theirs = flat(base.model_dump(mode="json", exclude=ignored))
    return {f"{kind}.{path}": value for path, value in mine.items() if theirs.get(path) != value}


def server_key(entry: ModelEntry, per_request: frozenset[str]) -> str:
    """What decides a model's server: its entry but for what is sent per request."""
    data = entry.model_dump(mode="json", exclude={"name", "description", "family", "base", "cost"})
    for path in per_request:
        *parents, last = path.split(".")
        node = value_at(data, tuple(parents))
        if isinstance(node, dict):
            node.pop(last, None)
    return stable_hash(data)


def without_per_request(entry: ModelEntry, per_request: frozenset[str]) -> ModelEntry:
    """The entry a shared server starts with: the engine arguments its backend takes per
    request are left to each request."""
    engine_args = {p.split(".", 1)[1] for p in per_request if p.startswith("engine_args.")}
    if not engine_args & entry.engine_args.model_fields_set:
        return entry
    update = {"engine_args": entry.engine_args.model_copy(update=dict.fromkeys(engine_args))}
    return entry.model_copy(update=update)


def check_name(file: str, where: Loc, name: str) -> Problem | None:
    if len(name) <= MAX_NAME_LENGTH:
        return None
    message = f"the variant name {name[:60]}… is over {MAX_NAME_LENGTH} characters; label values"
    return Problem(file, where, message)
