"""Load the YAML registries: one file per entry under ``datasets/``, ``models/``, ``tasks/``,
``metrics/``."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from vlmhyperbench.config.errors import ConfigError, from_validation_error, unknown_name
from vlmhyperbench.config.schema import DatasetEntry, MetricEntry, ModelEntry, TaskEntry

EntryT = TypeVar("EntryT", bound=BaseModel)

KINDS: dict[str, type[BaseModel]] = {
    "datasets": DatasetEntry,
    "models": ModelEntry,
    "tasks": TaskEntry,
    "metrics": MetricEntry,
}


@dataclass
class Registry:
    root: Path
    datasets: dict[str, DatasetEntry] = field(default_factory=dict)
    models: dict[str, ModelEntry] = field(default_factory=dict)
    tasks: dict[str, TaskEntry] = field(default_factory=dict)
    metrics: dict[str, MetricEntry] = field(default_factory=dict)
    files: dict[tuple[str, str], Path] = field(default_factory=dict)

    def path_of(self, kind: str, name: str) -> Path:
        return self.files[(kind, name)]


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {exc}") from exc


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; any other value (lists included) replaces the base value."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _validate_entry(kind: str, path: Path, raw: Any, override: dict[str, Any] | None) -> BaseModel:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    if raw["name"] != path.stem:
        raise ConfigError(
            f"{path}: name: {raw['name']!r} differs from the file name; "
            f"name the file {raw['name']}.yaml"
        )
    if override:
        raw = deep_merge(raw, override)
    try:
        return KINDS[kind].model_validate(raw)
    except ValidationError as exc:
        error = from_validation_error(path, exc)
        if override:
            error = ConfigError(f"{error} (after overrides.{kind}.{raw['name']} from the config)")
        raise error from exc


def load_registry(
    root: str | Path, overrides: dict[str, dict[str, dict[str, Any]]] | None = None
) -> Registry:
    """Read and validate every entry, then check the references between them."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: registry folder not found")
    overrides = overrides or {}
    registry = Registry(root=root)
    for kind in KINDS:
        entries: dict[str, BaseModel] = getattr(registry, kind)
        for path in sorted((root / kind).glob("*.y*ml")):
            entry = _validate_entry(
                kind, path, read_yaml(path), overrides.get(kind, {}).get(path.stem)
            )
            entries[entry.name] = entry
            registry.files[(kind, entry.name)] = path
        for name in overrides.get(kind, {}):
            if name not in entries:
                raise ConfigError(
                    unknown_name("config", f"overrides.{kind}.{name}", kind[:-1], name, entries)
                )
    _check_references(registry)
    _check_metric_implementations(registry)
    return registry


def _check_references(registry: Registry) -> None:
    problems: list[str] = []
    for name, task in registry.tasks.items():
        path = registry.path_of("tasks", name)
        if task.dataset not in registry.datasets:
            problems.append(
                unknown_name(path, "dataset", "dataset", task.dataset, registry.datasets)
            )
        for index, metric_name in enumerate(task.metrics):
            metric = registry.metrics.get(metric_name)
            if metric is None:
                problems.append(
                    unknown_name(path, f"metrics[{index}]", "metric", metric_name, registry.metrics)
                )
            elif task.kind not in metric.task_kinds:
                problems.append(
                    f"{path}: metrics[{index}]: metric {metric_name!r} does not fit a "
                    f"{task.kind!r} task (it fits: {', '.join(metric.task_kinds)})"
                )
    if problems:
        raise ConfigError("\n".join(problems))


def _check_metric_implementations(registry: Registry) -> None:
    """Resolve every metric's ``implementation`` and ``aggregate`` and check its ``params``
    against their signatures now, so a typo stops the run before inference, not at scoring."""
    from vlmhyperbench.metrics.loader import MetricLoadError, load_metric

    problems: list[str] = []
    for name, entry in registry.metrics.items():
        path = registry.path_of("metrics", name)
        try:
            metric = load_metric(entry.implementation)
        except MetricLoadError as exc:
            problems.append(f"{path}: implementation: {exc}")
            continue
        try:
            metric = load_metric(entry.implementation, entry.aggregate)
        except MetricLoadError as exc:
            problems.append(f"{path}: aggregate: {exc}")
            continue
        for param in metric.unknown_params(entry.params):
            problems.append(
                f"{path}: params.{param}: {entry.implementation} takes no parameter "
                f"{param!r} (it takes: {', '.join(metric.accepted_params()) or 'none'})"
            )
    if problems:
        raise ConfigError("\n".join(problems))
