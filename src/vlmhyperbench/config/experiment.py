"""The experiment: which (model, task) pairs to run, resolved against the registries.

The run matrix is the union of the config's blocks: the top-level ``models`` × ``tasks`` and
every ``runs[i]`` block. A block may carry its own overrides (deep-merged over the registry
entries for its pairs only) and a sample ``limit``; a pair listed by two blocks is merged when
they ask for the same settings and refused when they do not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from vlmhyperbench.config.errors import ConfigError, from_validation_error, unknown_name
from vlmhyperbench.config.registry import Registry, deep_merge, load_registry, read_yaml
from vlmhyperbench.config.schema import (
    DatasetEntry,
    ExperimentConfig,
    MetricEntry,
    ModelEntry,
    RunBlock,
    TaskEntry,
)

EntryT = TypeVar("EntryT", bound=BaseModel)

#: Keys a block may not override: they shape the model's one serve and predict rules (its
#: container, resources, environment, and the one server every task of the model shares), which
#: dataset and score files a task has, or its prompts (compiled once per task).
RULE_MODEL_KEYS = (
    "backend",
    "source",
    "endpoint",
    "engine_args",
    "resources",
    "container",
    "packages",
)
RULE_TASK_KEYS = ("dataset", "kind", "metrics", "prompt")


@dataclass(frozen=True)
class RunPair:
    """One (model, task) cell of the matrix, with the entries it runs with."""

    model: str
    task: str
    block: str  # the config key of the block that listed it first, e.g. ``runs[1]``
    settings: dict[str, Any]  # the block's overrides for this pair (compared across blocks)
    model_entry: ModelEntry
    task_entry: TaskEntry


@dataclass(frozen=True)
class Experiment:
    config: ExperimentConfig
    registry: Registry
    config_path: Path
    pairs: tuple[RunPair, ...] = field(default=())

    @property
    def models(self) -> dict[str, ModelEntry]:
        """Every model of the matrix (the registry entries: a block cannot change what
        shapes a model's predict rule)."""
        names = dict.fromkeys(p.model for p in self.pairs)
        return {name: self.registry.models[name] for name in names}

    @property
    def tasks(self) -> dict[str, TaskEntry]:
        names = dict.fromkeys(p.task for p in self.pairs)
        return {name: self.registry.tasks[name] for name in names}

    @property
    def datasets(self) -> dict[str, DatasetEntry]:
        return {t.dataset: self.registry.datasets[t.dataset] for t in self.tasks.values()}

    @property
    def metrics(self) -> dict[str, MetricEntry]:
        names = {m for t in self.tasks.values() for m in t.metrics}
        return {name: self.registry.metrics[name] for name in sorted(names)}

    def dataset_of(self, task: str) -> DatasetEntry:
        return self.registry.datasets[self.registry.tasks[task].dataset]

    def tasks_with_metric(self, metric: str) -> list[str]:
        return [name for name, task in self.tasks.items() if metric in task.metrics]

    def tasks_of(self, model: str) -> list[str]:
        """The tasks the matrix runs ``model`` on."""
        return [p.task for p in self.pairs if p.model == model]

    @cached_property
    def _pair_index(self) -> dict[tuple[str, str], RunPair]:
        return {(p.model, p.task): p for p in self.pairs}

    @cached_property
    def _narrowed(self) -> dict[tuple[str, str], Experiment]:
        return {}

    def pair(self, model: str, task: str) -> RunPair:
        try:
            return self._pair_index[(model, task)]
        except KeyError:
            raise KeyError(f"({model}, {task}) is not in the run matrix") from None

    def for_pair(self, model: str, task: str) -> Experiment:
        """This experiment narrowed to one pair, its registry holding the pair's own model
        and task entries (a job reads ``registry.models[...]`` / ``registry.tasks[...]``)."""
        narrowed = self._narrowed.get((model, task))
        if narrowed is None:
            pair = self.pair(model, task)
            registry = dataclasses.replace(
                self.registry,
                models={**self.registry.models, model: pair.model_entry},
                tasks={**self.registry.tasks, task: pair.task_entry},
            )
            narrowed = dataclasses.replace(self, registry=registry, pairs=(pair,))
            self._narrowed[(model, task)] = narrowed
        return narrowed


def load_experiment(
    config: dict[str, Any] | None = None,
    config_path: str | Path = "config/config.yaml",
    workdir: str | Path = ".",
) -> Experiment:
    """Validate the experiment config (given as a dict, or read from ``config_path``)."""
    config_path = Path(config_path)
    if config is None:
        if not config_path.is_file():
            raise ConfigError(f"{config_path}: config file not found")
        config = read_yaml(config_path) or {}
    try:
        experiment = ExperimentConfig.model_validate(config)
    except ValidationError as exc:
        raise from_validation_error(config_path, exc) from exc
    registry_dir = Path(workdir) / experiment.registry_dir
    registry = load_registry(registry_dir, experiment.overrides.model_dump())
    blocks: list[tuple[str, RunBlock]] = []
    if experiment.models:
        blocks.append(("", RunBlock(models=experiment.models, tasks=experiment.tasks)))
    blocks += [(f"runs[{i}].", block) for i, block in enumerate(experiment.runs)]
    problems: list[str] = []
    for prefix, block in blocks:
        problems += _check_names(config_path, prefix, block, registry)
    if problems:
        raise ConfigError("\n".join(problems))
    pairs: dict[tuple[str, str], RunPair] = {}
    for prefix, block in blocks:
        for pair in _block_pairs(config_path, prefix, block, registry, problems):
            seen = pairs.get((pair.model, pair.task))
            if seen is None:
                pairs[(pair.model, pair.task)] = pair
            elif seen.settings != pair.settings:
                problems.append(
                    f"{config_path}: ({pair.model}, {pair.task}) is in {_label(seen.block)} and "
                    f"in {_label(pair.block)} with different settings: {seen.settings} vs "
                    f"{pair.settings}; list the pair once, or give both blocks the same settings"
                )
    if problems:
        raise ConfigError("\n".join(problems))
    return Experiment(
        config=experiment,
        registry=registry,
        config_path=config_path,
        pairs=tuple(pairs.values()),
    )


def _label(prefix: str) -> str:
    return prefix.rstrip(".") or "the top-level models/tasks"


def _check_names(path: Path, prefix: str, block: RunBlock, registry: Registry) -> list[str]:
    problems = []
    for kind in ("models", "tasks"):
        known = getattr(registry, kind)
        names = getattr(block, kind)
        for index, name in enumerate(names):
            if name not in known:
                problems.append(
                    unknown_name(path, f"{prefix}{kind}[{index}]", kind[:-1], name, known)
                )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"{path}: {prefix}{kind}: listed more than once: {duplicates}")
        for name in getattr(block.overrides, kind):
            if name not in names:
                problems.append(
                    f"{path}: {prefix}overrides.{kind}.{name}: {name!r} is not among this "
                    f"block's {kind} ({', '.join(names)})"
                )
    return problems


def _block_pairs(
    path: Path, prefix: str, block: RunBlock, registry: Registry, problems: list[str]
) -> list[RunPair]:
    """The block's pairs with their merged entries; appends what is wrong to ``problems``."""
    from vlmhyperbench.pipeline.backend_specs import BACKENDS

    models = {}
    for name in block.models:
        where = f"{prefix}overrides.models.{name}"
        override = block.overrides.models.get(name, {})
        models[name] = _merged(
            path, where, registry.models[name], override, RULE_MODEL_KEYS, problems
        )
    tasks = {}
    for name in block.tasks:
        override = dict(block.overrides.tasks.get(name, {}))
        if block.limit is not None:
            override["limit"] = block.limit
        where = f"{prefix}overrides.tasks.{name}"
        tasks[name] = _merged(path, where, registry.tasks[name], override, RULE_TASK_KEYS, problems)
    pairs = []
    for m_index, (m_name, model) in enumerate(models.items()):
        kinds = BACKENDS[registry.models[m_name].backend].task_kinds
        for t_index, (t_name, task) in enumerate(tasks.items()):
            kind = registry.tasks[t_name].kind
            if kind not in kinds:
                backend = registry.models[m_name].backend
                problems.append(
                    f"{path}: {prefix}tasks[{t_index}]: model {m_name!r} ({prefix}models"
                    f"[{m_index}], backend {backend}) cannot serve task {t_name!r} of kind "
                    f"{kind!r}: the {backend} backend serves {', '.join(sorted(kinds))} tasks"
                )
                continue
            if model is None or task is None:
                continue
            task_settings = dict(block.overrides.tasks.get(t_name, {}))
            if block.limit is not None:
                task_settings["limit"] = block.limit
            settings = {"models": block.overrides.models.get(m_name, {}), "tasks": task_settings}
            pairs.append(RunPair(m_name, t_name, prefix, settings, model, task))
    return pairs


def _merged(
    path: Path,
    where: str,
    entry: EntryT,
    override: dict[str, Any],
    fixed_keys: tuple[str, ...],
    problems: list[str],
) -> EntryT | None:
    """``entry`` with a block's override deep-merged over it (the entry itself without one)."""
    if not override:
        return entry
    for key in fixed_keys:
        if key in override:
            problems.append(
                f"{path}: {where}.{key}: a run block cannot change {key} (it is one per "
                "entry for the whole run); set it in the top-level overrides"
            )
    try:
        return type(entry).model_validate(
            deep_merge(entry.model_dump(mode="json", exclude_unset=True), override)
        )
    except ValidationError as exc:
        problems.append(str(from_validation_error(path, exc, prefix=where)))
        return None
