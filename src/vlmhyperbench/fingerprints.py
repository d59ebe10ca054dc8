"""Fingerprints that go into a rule's ``params:`` so Snakemake re-runs exactly what changed.

For ``predict``: the model entry (minus what cannot change an answer: resources, description),
the task's prompt templates, filters, limit and effective generation parameters, and the
dataset entry. For ``score``: the metric's parameters and a hash of its implementation's source.
"""

from __future__ import annotations

import importlib
import inspect

from vlmhyperbench.config.schema import DatasetEntry, MetricEntry, ModelEntry, TaskEntry
from vlmhyperbench.io import stable_hash


def effective_generation(model: ModelEntry, task: TaskEntry) -> dict:
    """The task's generation parameters override the model's, key by key."""
    merged = model.generation.model_dump()
    if task.generation is not None:
        merged.update(task.generation.model_dump(exclude_unset=True))
    return merged


def predict_fingerprint(
    model: ModelEntry, task: TaskEntry, dataset: DatasetEntry, prompts_fingerprint: str
) -> str:
    """``prompts_fingerprint`` covers the templates and the files they come from
    (``TaskPrompts.fingerprint``)."""
    return stable_hash(
        {
            "model": model.model_dump(mode="json", exclude={"resources", "description"}),
            "prompts": prompts_fingerprint,
            "kind": task.kind,
            "structured_output": task.structured_output,
            "filters": task.filters.model_dump(),
            "limit": task.limit,
            "generation": effective_generation(model, task),
            "dataset": dataset.model_dump(mode="json", exclude={"description"}),
        }
    )


def source_hash(import_path: str) -> str:
    """Hash of the source of the module that holds ``module:attr`` (the whole module, so a
    helper the function calls is covered too)."""
    module_name = import_path.split(":", 1)[0]
    try:
        module = importlib.import_module(module_name)
        return stable_hash(inspect.getsource(module))
    except (ImportError, OSError, TypeError):
        return "unavailable"


def score_fingerprint(metric: MetricEntry, task: TaskEntry) -> str:
    return stable_hash(
        {
            "metric": metric.model_dump(mode="json", exclude={"description", "task_kinds"}),
            "implementation_source": source_hash(metric.implementation),
            "aggregate_source": source_hash(metric.aggregate) if metric.aggregate else None,
            "labels": task.labels,
            "synonyms": task.synonyms,
        }
    )
