"""A task of this run against the same task of a baseline run, sample by sample.

Both runs' score files of the task are read with the report's readers and compared with the
report's own :func:`~vlmhyperbench.reporting.compare.compare_baseline` (every metric of the
task, so Holm's correction and the verdicts are the report's). Per model and metric the shared
samples with a value in both runs (the report's ``n``) split into improved, regressed and
unchanged; their mean change is the report's ``change``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlmhyperbench.explorer.catalog import Catalog
from vlmhyperbench.reporting.compare import compare_baseline
from vlmhyperbench.reporting.results import Results, read_scores

TOLERANCE = 1e-9  # a smaller change of a sample's value is no change


@dataclass
class SampleChange:
    id: str
    before: float
    after: float
    answer_before: str | None
    answer_after: str | None


@dataclass
class ModelDiff:
    model: str
    n: int  # shared samples with a value in both runs
    improved: list[SampleChange] = field(default_factory=list)
    regressed: list[SampleChange] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)  # the report's baseline row

    @property
    def unchanged(self) -> int:
        return self.n - len(self.improved) - len(self.regressed)


def task_results(catalog: Catalog, task: str, threads: int = 4) -> Results:
    """A :class:`Results` holding ``task``'s per-sample scores only (the main metric with its
    text, the others their values), read by the report's own reader; a file that cannot be
    read is left out with a warning, as the report's gaps are."""
    summary = catalog.results.summary
    results = Results(root=catalog.root, summary=summary[summary["task"] == task])
    read_scores(results, sorted(results.score_keys()), threads)
    return results


def _answers(results: Results, model: str, task: str) -> dict[str, str | None]:
    main = results.scores.get((model, task, results.primary(task)))
    if main is None or main.text is None:
        return {}
    frame = main.text
    return dict(zip(frame["id"], frame["prediction"].where(frame["prediction"] != ""), strict=True))


def model_diff(
    now: Results, before: Results, model: str, task: str, metric: str
) -> ModelDiff | None:
    key = (model, task, metric)
    if key not in now.scores or key not in before.scores:
        return None
    new, old = now.scores[key], before.scores[key]
    shared, new_index, old_index = np.intersect1d(new.ids, old.ids, return_indices=True)
    a, b = new.values[new_index], old.values[old_index]
    both = ~np.isnan(a) & ~np.isnan(b)
    delta = np.where(both, a - b, 0.0)
    better = delta if now.higher_is_better(task, metric) else -delta
    answers_now, answers_before = _answers(now, model, task), _answers(before, model, task)
    diff = ModelDiff(model=model, n=int(both.sum()))
    for k in np.flatnonzero(np.abs(delta) > TOLERANCE):
        sample = str(shared[k])
        change = SampleChange(
            sample, float(b[k]), float(a[k]), answers_before.get(sample), answers_now.get(sample)
        )
        (diff.improved if better[k] > 0 else diff.regressed).append(change)
    return diff


def task_diff(
    current: Catalog, baseline: Catalog, task: str, *, n_boot: int, seed: int
) -> tuple[dict[str, list[ModelDiff]], list[str]]:
    """metric → per model of both runs its diff (with the report's baseline row); and the
    notes: models only one run has, score files that could not be read."""
    now, before = task_results(current, task), task_results(baseline, task)
    rows, notes = compare_baseline(now, before, n_boot=n_boot, seed=seed)
    notes += now.warnings + [f"baseline {w}" for w in before.warnings]
    by_key = {(r["model"], r["metric"]): r for r in rows.to_dict("records")}
    diffs: dict[str, list[ModelDiff]] = {}
    for metric in current.metrics(task):
        for model in current.models(task):
            diff = model_diff(now, before, model, task, metric)
            if diff is not None:
                diff.report = by_key.get((model, metric), {})
                diffs.setdefault(metric, []).append(diff)
    return diffs, [n for n in notes if not n.startswith("task ")]
