"""Load the YAML registries: one file per entry under ``datasets/``, ``models/``, ``tasks/``,
``metrics/``."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from vlmhyperbench.config.errors import ConfigError, Problem, unknown_name, validated
from vlmhyperbench.config.schema import DatasetEntry, JudgeSpec, MetricEntry, ModelEntry, TaskEntry

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
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([Problem(str(path), (), f"not valid YAML: {exc}", line)]) from exc


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; any other value (lists included) replaces the base value."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _raw_entry(path: Path) -> dict[str, Any]:
    """The mapping in ``path``, its ``name`` defaulting to (and checked against) the file name."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        message = f"expected a mapping at the top level, got {type(raw).__name__}"
        raise ConfigError([Problem(str(path), (), message)])
    raw.setdefault("name", path.stem)
    if raw["name"] != path.stem:
        message = f"{raw['name']!r} differs from the file name; name the file {raw['name']}.yaml"
        raise ConfigError([Problem(str(path), ("name",), message)])
    return raw


def resolve_bases(kind: str, raws: dict[str, tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """Each entry with its ``base:`` chain deep-merged under it (the base first, the entry's
    own keys over it), by name. An unknown base or a cycle is refused, naming the files."""
    resolved: dict[str, dict[str, Any]] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in resolved:
            return resolved[name]
        path, raw = raws[name]
        base = raw.get("base")
        if base is None:
            resolved[name] = raw
            return raw
        if not isinstance(base, str) or base not in raws:
            raise ConfigError([unknown_name(path, ("base",), kind[:-1], str(base), raws)])
        if base in chain or base == name:
            cycle = [*chain[chain.index(base) :], name, base] if base in chain else [name, name]
            files = " -> ".join(str(raws[n][0]) for n in cycle)
            raise ConfigError([Problem(str(path), ("base",), f"a cycle of bases: {files}")])
        resolved[name] = deep_merge(resolve(base, (*chain, name)), raw)
        return resolved[name]

    return {name: resolve(name, ()) for name in raws}


def _validate_entry(
    kind: str, path: Path, raw: dict[str, Any], override: dict[str, Any] | None, overrides_file: str
) -> BaseModel:
    """The entry in ``path`` with the config's override for it (from ``overrides_file``) merged
    over it; a problem the override made says so."""
    if not override:
        return validated(KINDS[kind], raw, path)
    try:
        return validated(KINDS[kind], deep_merge(raw, override), path)
    except ConfigError as error:
        cause = ("overrides", kind, path.stem)
        raise ConfigError(
            [replace(p, override=cause, override_file=overrides_file) for p in error.problems]
        ) from error


def load_registry(
    root: str | Path,
    overrides: dict[str, dict[str, dict[str, Any]]] | None = None,
    overrides_file: Path | str = "config",
) -> Registry:
    """Read and validate every entry (a ``base:`` entry merged over its base, then
    ``overrides``, the config's, merged over them: an override of a base does not reach its
    variants; a problem an override makes names ``overrides_file``), then check the references
    between them."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError([Problem(str(root), (), "registry folder not found")])
    overrides = overrides or {}
    registry = Registry(root=root)
    for kind in KINDS:
        entries: dict[str, BaseModel] = getattr(registry, kind)
        raws = {
            path.stem: (path, _raw_entry(path)) for path in sorted((root / kind).glob("*.y*ml"))
        }
        for name, raw in resolve_bases(kind, raws).items():
            path = raws[name][0]
            override = overrides.get(kind, {}).get(name)
            entry = _validate_entry(kind, path, raw, override, str(overrides_file))
            entries[entry.name] = entry
            registry.files[(kind, entry.name)] = path
        for name in overrides.get(kind, {}):
            if name not in entries:
                loc = ("overrides", kind, name)
                raise ConfigError([unknown_name(overrides_file, loc, kind[:-1], name, entries)])
    _check_references(registry)
    _check_metric_implementations(registry)
    return registry


def _check_references(registry: Registry) -> None:
    problems: list[Problem] = []
    for name, task in registry.tasks.items():
        path = registry.path_of("tasks", name)
        if task.dataset not in registry.datasets:
            problems.append(
                unknown_name(path, ("dataset",), "dataset", task.dataset, registry.datasets)
            )
        for index, metric_name in enumerate(task.metrics):
            metric = registry.metrics.get(metric_name)
            loc = ("metrics", index)
            if metric is None:
                problems.append(unknown_name(path, loc, "metric", metric_name, registry.metrics))
            elif task.kind not in metric.task_kinds:
                message = (
                    f"metric {metric_name!r} does not fit a {task.kind!r} task "
                    f"(it fits: {', '.join(metric.task_kinds)})"
                )
                problems.append(Problem(str(path), loc, message))
    if problems:
        raise ConfigError(problems)


def _check_metric_implementations(registry: Registry) -> None:
    """Resolve every metric's ``implementation`` and ``aggregate`` and check its ``params``
    against their signatures now, so a typo stops the run before inference, not at scoring."""
    from vlmhyperbench.metrics.loader import MetricLoadError, load_metric

    problems: list[Problem] = []
    for name, entry in registry.metrics.items():
        path = str(registry.path_of("metrics", name))
        if entry.judge is not None:
            problems += _judge_problems(registry, path, entry.judge)
            continue
        assert entry.implementation is not None  # MetricEntry: one or the other
        try:
            metric = load_metric(entry.implementation)
        except MetricLoadError as exc:
            problems.append(Problem(path, ("implementation",), str(exc)))
            continue
        try:
            metric = load_metric(entry.implementation, entry.aggregate)
        except MetricLoadError as exc:
            problems.append(Problem(path, ("aggregate",), str(exc)))
            continue
        for param in metric.unknown_params(entry.params):
            message = (
                f"{entry.implementation} takes no parameter {param!r} "
                f"(it takes: {', '.join(metric.accepted_params()) or 'none'})"
            )
            problems.append(Problem(path, ("params", param), message))
    if problems:
        raise ConfigError(problems)


def _judge_problems(registry: Registry, path: str, judge: JudgeSpec) -> list[Problem]:
    """A judge block's judges exist and can answer in text, and its templates compile."""
    from jinja2 import TemplateSyntaxError

    from vlmhyperbench.judge.requests import template_variables

    problems = []
    for index, model in enumerate(judge.models):
        loc = ("judge", "models", index)
        entry = registry.models.get(model)
        if entry is None:
            problems.append(unknown_name(path, loc, "model", model, registry.models))
        elif entry.backend == "tesseract":
            message = f"{model!r} cannot judge: the tesseract backend answers no prompt"
            problems.append(Problem(path, loc, message))
    used: set[str] = set()
    for part in ("system", "user"):
        source = getattr(judge.prompt, part)
        try:
            used |= template_variables(source) if source else set()
        except TemplateSyntaxError as exc:
            message = f"template error on line {exc.lineno}: {exc.message}"
            problems.append(Problem(path, ("judge", "prompt", part), message))
    return problems + _pairwise_template_problems(path, judge, used)


def _pairwise_template_problems(path: str, judge: JudgeSpec, used: set[str]) -> list[Problem]:
    """A pairwise prompt shows both answers; another verdict has no answer A or B."""
    from vlmhyperbench.judge.requests import PAIRWISE_VARIABLES

    if judge.verdict.type == "pairwise":
        missing = [name for name in PAIRWISE_VARIABLES if name not in used]
        message = f"a pairwise prompt shows both answers; it does not use {missing}"
    else:
        missing = [name for name in PAIRWISE_VARIABLES if name in used]
        message = f"{missing} exist only for a pairwise verdict (verdict: {{type: pairwise}})"
    return [Problem(path, ("judge", "prompt"), message)] if missing else []
