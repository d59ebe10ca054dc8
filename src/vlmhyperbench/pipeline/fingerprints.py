"""Fingerprints that go into a rule's ``params:`` so Snakemake re-runs exactly what changed.

For ``predict``: the model entry (minus what cannot change an answer: resources, description),
the task's prompt templates, filters, limit and effective generation parameters, the dataset
entry, and what the dataset's samples send (their fields but the answers, their images' bytes:
:mod:`vlmhyperbench.datasets.digest`). For ``score``: the metric's parameters, a hash of its
implementation's source and the manifest's content (answers included).
"""

from __future__ import annotations

from typing import Any

from vlmhyperbench.config.schema import DatasetEntry, MetricEntry, ModelEntry, TaskEntry
from vlmhyperbench.metrics.judge import JUDGE_METRIC
from vlmhyperbench.runtime.io import stable_hash

# The scoring stage itself (joining, aggregation, bootstrap): editing it re-scores everything.
SCORING = "vlmhyperbench.metrics.scoring:score_predictions"


def model_identity(model: ModelEntry) -> dict[str, Any]:
    """A model entry as far as it decides answers: not its resources, description, base or
    price (the predict and judge stages key their fingerprints and journals on it)."""
    return model.model_dump(mode="json", exclude={"resources", "description", "base", "cost"})


def effective_generation(model: ModelEntry, task: TaskEntry) -> dict:
    """The task's generation parameters override the model's, key by key."""
    merged = model.generation.model_dump()
    if task.generation is not None:
        merged.update(task.generation.model_dump(exclude_unset=True))
    return merged


def predict_fingerprint(
    model: ModelEntry,
    task: TaskEntry,
    dataset: DatasetEntry,
    prompts_fingerprint: str,
    content: str | None = None,
) -> str:
    """``prompts_fingerprint`` covers the templates and the files they come from
    (``TaskPrompts.fingerprint``); ``content`` is ``DatasetDigest.sent`` where the data exists.
    Without it: the fingerprint of the setup alone, which keys the journal (whose records are
    keyed on what each sample sends)."""
    setup = stable_hash(
        {
            "model": model_identity(model),
            "prompts": prompts_fingerprint,
            "kind": task.kind,
            "structured_output": task.structured_output,
            "filters": task.filters.model_dump(),
            "limit": task.limit,
            "generation": effective_generation(model, task),
            "dataset": dataset.model_dump(mode="json", exclude={"description", "base"}),
        }
    )
    return setup if content is None else stable_hash({"setup": setup, "content": content})


def source_hash(import_path: str) -> str:
    """Hash of what ``module:function`` (or a metric entry-point name) computes with: the
    function and the same-package helpers it references, transitively, plus the versions of
    the third-party packages they import — not the whole module, so editing one metric re-runs
    only that metric (see :mod:`vlmhyperbench.metrics.source`)."""
    from vlmhyperbench.metrics.loader import MetricLoadError
    from vlmhyperbench.metrics.loader import import_path as resolve_path
    from vlmhyperbench.metrics.source import implementation_hash

    try:
        return implementation_hash(resolve_path(import_path))
    except (MetricLoadError, ImportError, OSError, SyntaxError, ValueError):
        return "unavailable"


def score_fingerprint(metric: MetricEntry, task: TaskEntry, manifest: str | None = None) -> str:
    """``manifest``: ``DatasetDigest.manifest`` where the data exists (edited answers re-score)."""
    parts = {
        "metric": metric.model_dump(mode="json", exclude={"description", "task_kinds", "base"}),
        "implementation_source": source_hash(metric.implementation or JUDGE_METRIC),
        "aggregate_source": source_hash(metric.aggregate) if metric.aggregate else None,
        "scoring_source": source_hash(SCORING),
        "labels": task.labels,
        "synonyms": task.synonyms,
    }
    if manifest is not None:
        parts["manifest"] = manifest
    return stable_hash(parts)
