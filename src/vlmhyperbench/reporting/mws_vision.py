"""The data of the "MWS-Vision-Bench" section: the benchmark's five categories and its
``Overall`` per model, and where each model falls on the published validation leaderboard.

A task is one of the benchmark's categories when the category's metric is one of its metrics
(``mws_ocr``, ``mws_markdown``, ``mws_grounding``, ``mws_kie``, ``mws_vqa``:
:data:`~vlmhyperbench.metrics.mws.overall.CATEGORY_METRICS`); a run without such a task has no
section. Per model:

* each category: its mean and 95% CI as the task's score file has them (the summary, whose CI
  resamples pages), "—" where the model did not run it, never 0;
* ``Overall`` by the official rule (:func:`~vlmhyperbench.metrics.mws.overall.overall`: the mean
  of the five category means), only for a model with all five categories. The official code
  averages the categories a run has, so a run of fewer would get a number the leaderboard's
  cannot be compared with: such a model has "—" and the section says how many it has. The 95% CI
  resamples pages: each of ``n_boot`` resamples draws the model's pages (``doc_id`` clusters; a
  question without one is its own cluster) with replacement, once for all five categories (a
  page drawn twice counts twice in each category it has questions of), and recomputes each
  category mean and Overall; the interval is the 2.5/97.5 percentiles, seeded with the report's
  seed (a resample in which a category has no question is left out);
* its place on the published validation table (:mod:`.published_leaderboard`) when all its
  samples are from the validation split (their ``subset``): Overall in the ``overall`` column,
  or, without an Overall, each category it has in that category's column. A run on another
  split is not placed: a private-test number is not comparable with a validation one.

Gaps (a category scored by two tasks of one model, a missing score file) are warnings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vlmhyperbench.metrics.mws.overall import CATEGORY_METRICS, overall
from vlmhyperbench.reporting.published_leaderboard import (
    LeaderboardError,
    PublishedLeaderboard,
    place,
    read_leaderboard,
)
from vlmhyperbench.reporting.results import Results, SampleScores
from vlmhyperbench.stats.resampling import bootstrap_counts, cluster_index, cluster_sums

CI_LEVEL = 0.95
#: how far outside its CI a point may lie through float rounding alone (then the CI takes it in)
ROUNDING = 1e-12


@dataclass(frozen=True)
class Category:
    metric: str  # the metric that scores it
    official: str  # the official ``type``
    column: str  # the published table's column
    label: str  # the page's header


_OFFICIAL = {metric: official for official, metric in CATEGORY_METRICS.items()}
CATEGORIES = tuple(
    Category(metric, _OFFICIAL[metric], metric.removeprefix("mws_"), label)
    for metric, label in (
        ("mws_ocr", "Full-page OCR"),
        ("mws_markdown", "Document parsing"),
        ("mws_grounding", "Text grounding"),
        ("mws_kie", "Key information extraction"),
        ("mws_vqa", "Reasoning VQA"),
    )
)


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def category_tasks(results: Results, model: str) -> dict[str, list[str]]:
    """Category metric → the tasks of ``model`` scored by it (sorted)."""
    rows = results.overall[results.overall["model"] == model]
    found: dict[str, set[str]] = {}
    for row in rows[["task", "metric"]].itertuples(index=False):
        if row.metric in _OFFICIAL:
            found.setdefault(row.metric, set()).add(row.task)
    return {metric: sorted(tasks) for metric, tasks in found.items()}


def overall_interval(
    categories: list[SampleScores], n_boot: int, seed: int
) -> tuple[float, float] | None:
    """The 95% percentile interval of Overall over ``n_boot`` joint page resamples of the
    categories' per-question scores (one draw of the pages for all of them)."""
    if n_boot <= 0 or not categories:
        return None
    inverse, n_clusters = cluster_index(np.concatenate([c.clusters for c in categories]))
    counts = bootstrap_counts(n_clusters, n_boot, np.random.default_rng(seed))
    means, start = [], 0
    for scores in categories:
        rows = inverse[start : start + len(scores.values)]
        start += len(scores.values)
        answered = ~np.isnan(scores.values)
        stats = np.column_stack([np.where(answered, scores.values, 0.0), answered])
        totals = counts @ cluster_sums(stats, rows, n_clusters)  # (n_boot, 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(totals[:, 0] / totals[:, 1])
    # the official rule on each resample's category means (NaN: a category drew no question)
    replicates = np.array(
        [overall(dict(zip(_OFFICIAL, draw, strict=True))) for draw in zip(*means, strict=True)]
    )
    replicates = replicates[~np.isnan(replicates)]
    if replicates.size == 0:
        return None
    alpha = (1.0 - CI_LEVEL) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _split(categories: list[SampleScores]) -> str | None:
    """The one split (``subset``) of all the samples, or ``None`` (unknown, or several)."""
    subsets = {str(s) for scores in categories for s in scores.subset}
    return subsets.pop() if len(subsets) == 1 and "" not in subsets else None


def _cell(results: Results, model: str, task: str, category: Category) -> dict[str, Any] | None:
    """A category's value, CI and samples from the summary (``None``: no value)."""
    rows = results.overall[
        (results.overall["model"] == model)
        & (results.overall["task"] == task)
        & (results.overall["metric"] == category.metric)
    ]
    value = _number(rows["value"].iloc[0]) if len(rows) else None
    if value is None:
        return None
    first = rows.iloc[0]
    return {
        "task": task,
        "value": value,
        "ci_low": _number(first["ci_low"]),
        "ci_high": _number(first["ci_high"]),
        "n": None if _number(first["n_samples"]) is None else int(first["n_samples"]),
    }


def _cells(
    results: Results, model: str, warnings: list[str]
) -> tuple[dict[str, dict[str, Any] | None], list[SampleScores]]:
    """Each category's cell (``None``: not run, no value, or scored by two tasks of the
    model), and the per-question scores behind the cells."""
    tasks = category_tasks(results, model)
    cells: dict[str, dict[str, Any] | None] = {}
    scores: list[SampleScores] = []
    for category in CATEGORIES:
        found = tasks.get(category.metric, [])
        if len(found) > 1:
            warnings.append(
                f"MWS-Vision-Bench: {model} has {category.label} ({category.metric}) from "
                f"{len(found)} tasks ({', '.join(found)}): which one counts is ambiguous, so "
                "the category is left out of the section"
            )
        cell = _cell(results, model, found[0], category) if len(found) == 1 else None
        cells[category.metric] = cell
        if cell is None:
            continue
        sample_scores = results.scores.get((model, cell["task"], category.metric))
        if sample_scores is not None:
            scores.append(sample_scores)
    return cells, scores


def _overall(
    cells: dict[str, dict[str, Any] | None],
    scores: list[SampleScores],
    n_boot: int,
    seed: int,
) -> dict[str, Any] | None:
    """Overall with its CI, for a model with all five categories (else ``None``)."""
    means = {metric: cell["value"] for metric, cell in cells.items() if cell is not None}
    if len(means) < len(CATEGORIES):
        return None
    value = overall(means)
    interval = overall_interval(scores, n_boot, seed) if len(scores) == len(CATEGORIES) else None
    if interval is not None:
        low, high = interval
        if low - ROUNDING <= value <= high + ROUNDING:
            interval = (min(low, value), max(high, value))
    return {
        "value": value,
        "ci_low": None if interval is None else interval[0],
        "ci_high": None if interval is None else interval[1],
    }


def _placements(row: dict[str, Any], board: PublishedLeaderboard) -> list[str]:
    """Where the model falls on ``board``: its Overall, or each category it has in that
    category's column (a CI that does not hold its point is left out: ``place`` refuses it)."""
    if row["overall"] is not None:
        wanted = [("overall", row["overall"])]
    else:
        wanted = [
            (category.column, row["cells"][category.metric])
            for category in CATEGORIES
            if row["cells"][category.metric] is not None
        ]
    lines = []
    for column, entry in wanted:
        ci = (entry["ci_low"], entry["ci_high"])
        usable = None not in ci and ci[0] <= entry["value"] <= ci[1]
        value, split = entry["value"], row["split"]
        text = place(board, value, ci if usable else None, column=column, split=split).text
        lines.append(f"Overall {text}" if column == "overall" else text)
    return lines


def _unknown_split(board: PublishedLeaderboard) -> str:
    return (
        "not placed: its samples' split (their subset) is unknown or mixed, and only a "
        f"{board.split} score can be placed on the {board.split} table"
    )


def model_row(
    results: Results,
    model: str,
    board: PublishedLeaderboard | None,
    *,
    n_boot: int,
    seed: int,
    warnings: list[str],
) -> dict[str, Any]:
    """One model's categories, Overall, split and placement on ``board``."""
    cells, scores = _cells(results, model, warnings)
    present = [c.label for c in CATEGORIES if cells[c.metric] is not None]
    if len(scores) < len(present):
        warnings.append(
            f"MWS-Vision-Bench: {model} lacks the per-question scores of "
            f"{len(present) - len(scores)} of its {len(present)} categories: its Overall has no CI"
        )
    row: dict[str, Any] = {
        "model": model,
        "cells": cells,
        "categories": present,
        "overall": _overall(cells, scores, n_boot, seed),
        "questions": sum(len(s.values) for s in scores),
        "pages": len(set(np.concatenate([s.clusters for s in scores]).tolist())) if scores else 0,
        "split": _split(scores),
        "placements": [],
        "not_placed": None,
    }
    if board is None:
        row["not_placed"] = "not placed: the published table could not be read (see Gaps)"
    elif row["split"] is None:
        row["not_placed"] = _unknown_split(board)
    else:
        try:  # place() refuses a score of another split than the table's
            row["placements"] = _placements(row, board)
        except LeaderboardError as exc:
            row["not_placed"] = f"not placed: it ran on the {row['split']} split, and {exc}"
    return row


def has_categories(results: Results) -> bool:
    """Whether a task of the run is scored by one of the benchmark's category metrics."""
    return bool(set(results.overall["metric"]) & set(_OFFICIAL))


def mws_vision_section(
    results: Results,
    *,
    n_boot: int,
    seed: int,
    board: PublishedLeaderboard | None = None,
) -> tuple[dict[str, Any] | None, list[str]]:
    """The section's data (``None``: the run has no MWS-Vision-Bench task) and its warnings.
    ``board``: the published table (default: the package's validation table)."""
    if not has_categories(results):
        return None, []
    warnings: list[str] = []
    if board is None:
        try:
            board = read_leaderboard()
        except LeaderboardError as exc:
            warnings.append(f"MWS-Vision-Bench: the published leaderboard: {exc}")
    models = [m for m in results.models() if category_tasks(results, m)]
    rows = [
        model_row(results, m, board, n_boot=n_boot, seed=seed, warnings=warnings) for m in models
    ]
    table = None
    if board is not None:
        table = {
            "source_url": board.source_url,
            "commit": board.commit,
            "date": board.table_date,
            "split": board.split,
            "models": len(board.scores),
        }
    return {
        "categories": [asdict(c) for c in CATEGORIES],
        "rows": rows,
        "n_boot": n_boot,
        "seed": seed,
        "table": table,
    }, warnings
