"""Choose a task's samples from its dataset: filters (each works alone) and an optional limit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the score job selects from plain data, without the config package
    from vlmhyperbench.config.schema import TaskEntry
    from vlmhyperbench.datasets.manifest import Sample


def select_samples(task: TaskEntry, samples: list[Sample]) -> list[Sample]:
    return select(samples, task.filters.model_dump(), task.limit)


def select(
    samples: list[Sample], filters: Mapping[str, Sequence[str]], limit: int | None
) -> list[Sample]:
    """``filters``: a task's ``Filters`` as a dict (``doc_class``, ``question_type``, ``subset``:
    keep samples whose field is in the list; an empty list keeps all)."""
    chosen = [
        sample
        for sample in samples
        if all(not wanted or getattr(sample, name) in wanted for name, wanted in filters.items())
    ]
    return chosen[:limit] if limit else chosen
