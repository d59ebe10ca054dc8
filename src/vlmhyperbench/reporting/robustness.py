"""Robustness: a task's main metric per distortion subset, relative to clean, and flip rates.

- value per subset: from the summary's ``subset`` groups (with their CIs);
- rPC (relative performance under corruption): value on the subset / value on ``clean`` for a
  higher-is-better metric, clean / subset for a lower-is-better one (so 1.0 = unaffected and
  less is worse either way); undefined where the divisor is 0;
- flip rate: of the distorted samples whose ``origin`` (the clean original) was right, the
  share that are wrong — on the task's first 0/1 metric (the main metric if it is one);
- the main metric by ``severity`` (clean = 0) per model, for the figure.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vlmhyperbench.reporting.results import Results
from vlmhyperbench.reporting.stats import is_binary

CLEAN = "clean"
ROBUSTNESS_COLUMNS = [
    "task",
    "model",
    "metric",
    "subset",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "rpc",
    "flip_metric",
    "flip_rate",
    "flip_n",
]


def _rpc(value: float, clean: float, higher: bool) -> float:
    numerator, denominator = (value, clean) if higher else (clean, value)
    if any(x != x for x in (numerator, denominator)) or denominator == 0:
        return math.nan
    return numerator / denominator


def flip_metric(results: Results, task: str) -> str | None:
    """The task's first higher-is-better metric with 0/1 values."""
    for metric in results.metrics(task):
        if not results.higher_is_better(task, metric):
            continue
        entries = list(results.by_metric(task, metric).values())
        if entries and all(is_binary(s.values) for s in entries):
            return metric
    return None


def flip_rates(
    results: Results, task: str, metric: str, model: str
) -> dict[str, tuple[float, int]]:
    """subset → (flip rate, number of distorted samples whose clean original was right)."""
    scores = results.scores.get((model, task, metric))
    if scores is None:
        return {}
    value_of = dict(zip(scores.ids.tolist(), scores.values.tolist(), strict=True))
    out: dict[str, list[int]] = {}
    for origin, value, subset in zip(scores.origin, scores.values, scores.subset, strict=True):
        clean = value_of.get(origin) if origin else None
        if clean is None or clean != 1.0 or value != value:
            continue
        counts = out.setdefault(subset, [0, 0])
        counts[0] += value != 1.0
        counts[1] += 1
    return {s: (flips / n, n) for s, (flips, n) in out.items()}


def robustness_table(results: Results) -> pd.DataFrame:
    summary = results.summary
    groups = summary[summary["group_by"] == "subset"]
    rows = []
    for task in results.tasks():
        metric = results.primary(task)
        higher = results.higher_is_better(task, metric)
        by_subset = groups[(groups["task"] == task) & (groups["metric"] == metric)]
        if by_subset["group"].nunique() < 2:
            continue
        flip = flip_metric(results, task)
        for model in sorted(by_subset["model"].unique()):
            mine = by_subset[by_subset["model"] == model].set_index("group")
            clean = float(mine["value"].get(CLEAN, math.nan))
            flips = flip_rates(results, task, flip, model) if flip else {}
            for subset in _subset_order(mine.index.tolist()):
                entry = mine.loc[subset]
                rate, n_flip = flips.get(subset, (math.nan, 0))
                rows.append(
                    {
                        "task": task,
                        "model": model,
                        "metric": metric,
                        "subset": subset,
                        "value": float(entry["value"]),
                        "ci_low": float(entry["ci_low"]),
                        "ci_high": float(entry["ci_high"]),
                        "n": int(entry["n"]) if entry["n"] == entry["n"] else 0,
                        "rpc": _rpc(float(entry["value"]), clean, higher),
                        "flip_metric": flip or "",
                        "flip_rate": rate,
                        "flip_n": n_flip,
                    }
                )
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)


def _subset_order(subsets: list[str]) -> list[str]:
    return sorted(subsets, key=lambda s: (s != CLEAN, s))


def by_severity(results: Results, task: str) -> dict[str, dict[float, float]]:
    """model → {severity: mean of the main metric}; clean samples are severity 0."""
    metric = results.primary(task)
    out: dict[str, dict[float, float]] = {}
    for (model, t, m), scores in sorted(results.scores.items()):
        if t != task or m != metric:
            continue
        severity = scores.severity.copy()
        severity[(scores.subset == CLEAN) & np.isnan(severity)] = 0.0
        known = ~np.isnan(severity) & ~np.isnan(scores.values)
        if len(set(severity[known].tolist())) < 2:
            continue
        frame = pd.DataFrame({"severity": severity[known], "value": scores.values[known]})
        means = frame.groupby("severity")["value"].mean()
        out[model] = {float(k): float(v) for k, v in means.items()}
    return out
