"""Experiment config and the YAML registries (datasets, models, tasks, metrics)."""

from vlmhyperbench.config.errors import ConfigError
from vlmhyperbench.config.experiment import Experiment, load_experiment
from vlmhyperbench.config.registry import Registry, load_registry

__all__ = ["ConfigError", "Experiment", "Registry", "load_experiment", "load_registry"]
