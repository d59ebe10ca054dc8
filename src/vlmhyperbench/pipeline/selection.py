"""Choose a task's samples from its dataset: filters (each works alone) and an optional limit."""

from __future__ import annotations

from vlmhyperbench.config.schema import TaskEntry
from vlmhyperbench.datasets.manifest import Sample


def select_samples(task: TaskEntry, samples: list[Sample]) -> list[Sample]:
    filters = task.filters
    chosen = [
        sample
        for sample in samples
        if (not filters.doc_class or sample.doc_class in filters.doc_class)
        and (not filters.question_type or sample.question_type in filters.question_type)
        and (not filters.subset or sample.subset in filters.subset)
    ]
    return chosen[: task.limit] if task.limit else chosen
