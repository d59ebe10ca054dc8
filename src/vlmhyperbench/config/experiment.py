"""The experiment: which models × tasks to run, resolved against the registries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vlmhyperbench.config.errors import ConfigError, from_validation_error, unknown_name
from vlmhyperbench.config.registry import Registry, load_registry, read_yaml
from vlmhyperbench.config.schema import (
    DatasetEntry,
    ExperimentConfig,
    MetricEntry,
    ModelEntry,
    TaskEntry,
)


@dataclass(frozen=True)
class Experiment:
    config: ExperimentConfig
    registry: Registry
    config_path: Path

    @property
    def models(self) -> dict[str, ModelEntry]:
        return {name: self.registry.models[name] for name in self.config.models}

    @property
    def tasks(self) -> dict[str, TaskEntry]:
        return {name: self.registry.tasks[name] for name in self.config.tasks}

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
    problems = []
    for kind in ("models", "tasks"):
        known = getattr(registry, kind)
        for index, name in enumerate(getattr(experiment, kind)):
            if name not in known:
                problems.append(
                    unknown_name(config_path, f"{kind}[{index}]", kind[:-1], name, known)
                )
        duplicates = sorted(
            {n for n in getattr(experiment, kind) if getattr(experiment, kind).count(n) > 1}
        )
        if duplicates:
            problems.append(f"{config_path}: {kind}: listed more than once: {duplicates}")
    if problems:
        raise ConfigError("\n".join(problems))
    return Experiment(config=experiment, registry=registry, config_path=config_path)
