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
from typing import Any

from vlmhyperbench.config.errors import (
    ConfigError,
    Loc,
    ModelT,
    Problem,
    key_path,
    unknown_name,
    validated,
)
from vlmhyperbench.config.registry import Registry, deep_merge, load_registry, read_yaml
from vlmhyperbench.config.schema import (
    DatasetEntry,
    ExperimentConfig,
    MetricEntry,
    ModelEntry,
    RunBlock,
    TaskEntry,
)

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
    block: str  # the config key of the block that listed it first, e.g. ``runs[1]`` ("" top level)
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
    """Validate the experiment config (given as a dict, or read from ``config_path``), every
    registry entry, and the run matrix. Every problem names ``config_path`` or an entry's file."""
    config_path = Path(config_path)
    if config is None:
        if not config_path.is_file():
            raise ConfigError([Problem(str(config_path), (), "config file not found")])
        config = read_yaml(config_path) or {}
    experiment = validated(ExperimentConfig, config, config_path)
    registry = load_registry(
        Path(workdir) / experiment.registry_dir, experiment.overrides.model_dump(), config_path
    )
    blocks: list[tuple[Loc, RunBlock]] = []
    if experiment.models:
        blocks.append(((), RunBlock(models=experiment.models, tasks=experiment.tasks)))
    blocks += [(("runs", i), block) for i, block in enumerate(experiment.runs)]
    problems: list[Problem] = []
    for prefix, block in blocks:
        problems += _check_names(str(config_path), prefix, block, registry)
    if problems:
        raise ConfigError(problems)
    pairs: dict[tuple[str, str], RunPair] = {}
    for prefix, block in blocks:
        for pair in _block_pairs(str(config_path), prefix, block, registry, problems):
            seen = pairs.setdefault((pair.model, pair.task), pair)
            if seen.settings != pair.settings:
                message = (
                    f"({pair.model}, {pair.task}) is in {_label(seen.block)} and in "
                    f"{_label(pair.block)} with different settings: {seen.settings} vs "
                    f"{pair.settings}; list the pair once, or give both blocks the same settings"
                )
                problems.append(Problem(str(config_path), (), message))
    if problems:
        raise ConfigError(problems)
    return Experiment(
        config=experiment,
        registry=registry,
        config_path=config_path,
        pairs=tuple(pairs.values()),
    )


def _label(block: str) -> str:
    return block or "the top-level models/tasks"


def _check_names(file: str, prefix: Loc, block: RunBlock, registry: Registry) -> list[Problem]:
    problems = []
    for kind in ("models", "tasks"):
        known = getattr(registry, kind)
        names = getattr(block, kind)
        for index, name in enumerate(names):
            if name not in known:
                problems.append(unknown_name(file, (*prefix, kind, index), kind[:-1], name, known))
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            message = f"listed more than once: {duplicates}"
            problems.append(Problem(file, (*prefix, kind), message))
        for name in getattr(block.overrides, kind):
            if name not in names:
                message = f"{name!r} is not among this block's {kind} ({', '.join(names)})"
                problems.append(Problem(file, (*prefix, "overrides", kind, name), message))
    return problems


def _block_pairs(
    file: str, prefix: Loc, block: RunBlock, registry: Registry, problems: list[Problem]
) -> list[RunPair]:
    """The block's pairs with their merged entries; appends what is wrong to ``problems``."""
    from vlmhyperbench.pipeline.backend_specs import BACKENDS

    models = {}
    for name in block.models:
        where = (*prefix, "overrides", "models", name)
        override = block.overrides.models.get(name, {})
        models[name] = _merged(
            file, where, registry.models[name], override, RULE_MODEL_KEYS, problems
        )
    tasks = {}
    for name in block.tasks:
        override = _task_settings(block, name)
        where = (*prefix, "overrides", "tasks", name)
        tasks[name] = _merged(file, where, registry.tasks[name], override, RULE_TASK_KEYS, problems)
    pairs = []
    for m_index, (m_name, model) in enumerate(models.items()):
        backend = registry.models[m_name].backend
        kinds = BACKENDS[backend].task_kinds
        for t_index, (t_name, task) in enumerate(tasks.items()):
            kind = registry.tasks[t_name].kind
            if kind not in kinds:
                message = (
                    f"model {m_name!r} ({key_path((*prefix, 'models', m_index))}, backend "
                    f"{backend}) cannot serve task {t_name!r} of kind {kind!r}: the {backend} "
                    f"backend serves {', '.join(sorted(kinds))} tasks"
                )
                problems.append(Problem(file, (*prefix, "tasks", t_index), message))
                continue
            if model is None or task is None:
                continue
            settings = {
                "models": block.overrides.models.get(m_name, {}),
                "tasks": _task_settings(block, t_name),
            }
            pairs.append(RunPair(m_name, t_name, key_path(prefix), settings, model, task))
    return pairs


def _task_settings(block: RunBlock, task: str) -> dict[str, Any]:
    """What the block changes in ``task``'s entry: its overrides, and its sample limit."""
    settings = dict(block.overrides.tasks.get(task, {}))
    if block.limit is not None:
        settings["limit"] = block.limit
    return settings


def _merged(
    file: str,
    where: Loc,
    entry: ModelT,
    override: dict[str, Any],
    fixed_keys: tuple[str, ...],
    problems: list[Problem],
) -> ModelT | None:
    """``entry`` with a block's override deep-merged over it (the entry itself without one)."""
    if not override:
        return entry
    for key in fixed_keys:
        if key in override:
            message = (
                f"a run block cannot change {key} (it is one per entry for the whole run); "
                "set it in the top-level overrides"
            )
            problems.append(Problem(file, (*where, key), message))
    merged = deep_merge(entry.model_dump(mode="json", exclude_unset=True), override)
    try:
        return validated(type(entry), merged, file, prefix=where)
    except ConfigError as error:
        problems.extend(error.problems)
        return None
