"""What a results folder holds, read at start-up without its per-sample files.

The tasks, models, metrics and directions come from the summary through the report's own reader
(:class:`~vlmhyperbench.reporting.results.Results`, with no score file loaded); the variants'
groups from ``variants.json`` and the judge metrics from the report's readers too; the dataset
each task read from the predict jobs' provenance records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vlmhyperbench.pipeline.provenance import PROVENANCE_DIR
from vlmhyperbench.reporting.judge_metrics import JudgeMetric, read_judge_metrics
from vlmhyperbench.reporting.results import Results, read_summary
from vlmhyperbench.reporting.variants import load_variants, name_order

if TYPE_CHECKING:
    from vlmhyperbench.explorer.filters import TaskFilter


@dataclass(frozen=True)
class DatasetRecord:
    """The dataset a task's predictions read, as its provenance records name it."""

    name: str
    manifest_sha256: str | None = None


@dataclass
class Catalog:
    results: Results  # the summary only: its score dicts stay empty
    group_of: Callable[[str], str]
    datasets: dict[str, DatasetRecord] = field(default_factory=dict)  # task → dataset
    warnings: list[str] = field(default_factory=list)
    _judge_metrics: dict[str, JudgeMetric] | None = None

    def judge_metrics(self) -> dict[str, JudgeMetric]:
        """The judge metrics ``variants.json`` lists, by name, read on first use."""
        if self._judge_metrics is None:
            metrics, warnings = read_judge_metrics(self.root)
            self.warnings += warnings
            self._judge_metrics = {m.name: m for m in metrics}
        return self._judge_metrics

    @property
    def root(self) -> Path:
        return self.results.root

    def tasks(self) -> list[str]:
        return self.results.tasks()

    def models(self, task: str | None = None) -> list[str]:
        """The run's models (or a task's), grouped: a group's own model, then its variants."""
        overall = self.results.overall
        if task is not None:
            overall = overall[overall["task"] == task]
        names = sorted(set(overall["model"].tolist()))
        return [m for _, members in name_order(names, self.group_of) for m in members]

    def metrics(self, task: str) -> list[str]:
        return self.results.metrics(task)

    def primary(self, task: str) -> str:
        return self.results.primary(task)

    def higher_is_better(self, task: str, metric: str) -> bool:
        return self.results.higher_is_better(task, metric)

    def in_view(self, task: str, f: TaskFilter) -> tuple[str, list[str]]:
        """The metric ``f`` looks at and the models it shows: its own, else the task's main
        metric and all the task's models."""
        return f.metric or self.primary(task), list(f.models) or self.models(task)

    def group_columns(self, task: str) -> list[str]:
        """The columns the task's scores are grouped by in the summary (subset, doc_class, …)."""
        overall = self.results.summary
        groups = overall.loc[(overall["task"] == task) & (overall["group_by"] != "overall")]
        return sorted(set(groups["group_by"].tolist()))


def _dataset_records(root: Path, warnings: list[str]) -> dict[str, DatasetRecord]:
    """task → the dataset its provenance records name (the first model's, by name)."""
    found: dict[str, DatasetRecord] = {}
    for path in sorted((root / PROVENANCE_DIR).glob("*/*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            dataset = record.get("dataset") or {}
            name = dataset.get("name")
        except (OSError, ValueError, AttributeError) as exc:
            warnings.append(f"{path.relative_to(root)}: unreadable provenance ({exc})")
            continue
        if not isinstance(name, str) or not name:
            continue
        task, sha = path.stem, dataset.get("manifest_sha256")
        entry = DatasetRecord(name, sha if isinstance(sha, str) else None)
        if task in found and found[task].name != entry.name:
            warnings.append(
                f"{path.relative_to(root)}: dataset {entry.name}, other models of {task} read "
                f"{found[task].name}; showing {found[task].name}"
            )
        found.setdefault(task, entry)
    return found


def open_catalog(root: str | Path) -> Catalog:
    """The catalog of ``root``; raises ``NotAResultsFolder`` where there is no summary."""
    root = Path(root)
    results = Results(root=root, summary=read_summary(root))
    warnings: list[str] = []
    variants, variant_warnings = load_variants(root)
    warnings += variant_warnings
    return Catalog(
        results=results,
        group_of=variants.group if variants is not None else (lambda model: model),
        datasets=_dataset_records(root, warnings),
        warnings=warnings,
    )
