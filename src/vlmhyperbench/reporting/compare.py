"""Pairwise model comparisons within a run, and a run against a baseline run.

Each pair is compared on the samples both have, with the difference's 95% CI from the paired
cluster bootstrap, a p-value (McNemar's exact test for 0/1 metrics, the clustered sign-flip
permutation test otherwise), Holm's correction over every comparison of the task, and the
minimum detectable difference at 80% power for that many clusters.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from vlmhyperbench.reporting.results import Results, SampleScores
from vlmhyperbench.reporting.stats import (
    ALPHA,
    holm,
    is_binary,
    mcnemar_exact,
    mcnemar_exact_matrix,
    paired_matrix,
    power_multiplier,
)
from vlmhyperbench.stats.resampling import Resampling, cluster_labels

COMPARISON_COLUMNS = [
    "task",
    "metric",
    "model_a",
    "model_b",
    "higher_is_better",
    "n",
    "n_clusters",
    "value_a",
    "value_b",
    "diff",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "p_holm",
    "significant",
    "mdd",
]
BASELINE_COLUMNS = [
    "model",
    "task",
    "metric",
    "higher_is_better",
    "n",
    "baseline",
    "current",
    "change",
    "ci_low",
    "ci_high",
    "test",
    "p_value",
    "p_holm",
    "verdict",
]


def task_seed(seed: int, task: str) -> int:
    """A per-task seed, so one task's draws do not depend on which other tasks exist."""
    return seed * 1_000_003 + zlib.crc32(task.encode("utf-8"))


def _aligned(
    entries: dict[str, SampleScores],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(models, values matrix over the union of sample ids, cluster per sample id)."""
    models = sorted(entries)
    first = entries[models[0]]
    if all(np.array_equal(entries[m].ids, first.ids) for m in models[1:]):
        return models, np.vstack([entries[m].values for m in models]), first.clusters
    ids = sorted(set().union(*(set(entries[m].ids.tolist()) for m in models)))
    position = {sample_id: k for k, sample_id in enumerate(ids)}
    matrix = np.full((len(models), len(ids)), math.nan)
    clusters = cluster_labels(ids).astype(object)
    for row, model in enumerate(models):
        entry = entries[model]
        index = np.fromiter((position[i] for i in entry.ids), dtype=np.int64, count=len(entry.ids))
        matrix[row, index] = entry.values
        clusters[index] = entry.clusters
    return models, matrix, clusters


def compare_task(results: Results, task: str, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Every pair of models on every metric of ``task`` (each pair once, the better model as A;
    ties: the first by name)."""
    frames = []
    resampling_cache: dict[bytes, Resampling] = {}
    for metric in results.metrics(task):
        entries = results.by_metric(task, metric)
        if len(entries) < 2:
            continue
        models, matrix, clusters = _aligned(entries)
        key = "\0".join(clusters.tolist()).encode()
        if key not in resampling_cache:
            resampling_cache[key] = Resampling.draw(clusters, n_boot, task_seed(seed, task))
        resampling = resampling_cache[key]
        binary = is_binary(matrix)
        stats = paired_matrix(matrix, resampling, permutation=not binary)
        higher = results.higher_is_better(task, metric)
        means = np.nanmean(matrix, axis=1)
        i, j = np.triu_indices(len(models), 1)
        score = np.nan_to_num(means if higher else -means, nan=-np.inf)
        # i < j, so models[i] sorts first: it is A when at least as good.
        swap = score[j] > score[i]
        a, b = np.where(swap, j, i), np.where(swap, i, j)
        p = mcnemar_exact_matrix(np.nan_to_num(matrix, nan=-1.0)) if binary else stats["p"]
        se = stats["se"][a, b]
        names = np.array(models, dtype=object)
        frames.append(
            pd.DataFrame(
                {
                    "task": task,
                    "metric": metric,
                    "model_a": names[a],
                    "model_b": names[b],
                    "higher_is_better": higher,
                    "n": np.nan_to_num(stats["n"][a, b]).astype(int),
                    "n_clusters": resampling.n_clusters,
                    "value_a": means[a],
                    "value_b": means[b],
                    "diff": stats["diff"][a, b],
                    "ci_low": stats["ci_low"][a, b],
                    "ci_high": stats["ci_high"][a, b],
                    "test": "mcnemar_exact" if binary else "sign_flip_permutation",
                    "p_value": p[a, b],
                    "mdd": power_multiplier(resampling.n_clusters) * se,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    frame["p_holm"] = holm(frame["p_value"].tolist())
    frame["significant"] = frame["p_holm"] < ALPHA
    return frame[COMPARISON_COLUMNS]


def compare_run(results: Results, *, n_boot: int, seed: int) -> pd.DataFrame:
    frames = [compare_task(results, task, n_boot=n_boot, seed=seed) for task in results.tasks()]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def compare_baseline(
    current: Results, baseline: Results, *, n_boot: int, seed: int
) -> tuple[pd.DataFrame, list[str]]:
    """Per (model, task, metric) in both runs: the change current − baseline on the shared
    sample ids, its CI and p-value (Holm within a task), and a verdict. Also the lines that say
    which models and tasks only one run has."""
    rows = []
    for key in sorted(set(current.scores) & set(baseline.scores)):
        model, task, metric = key
        new, old = current.scores[key], baseline.scores[key]
        shared, new_index, old_index = np.intersect1d(new.ids, old.ids, return_indices=True)
        higher = current.higher_is_better(task, metric)
        if shared.size == 0:
            continue
        a, b = new.values[new_index], old.values[old_index]
        resampling = Resampling.draw(new.clusters[new_index], n_boot, task_seed(seed, task))
        stats = paired_matrix(np.vstack([a, b]), resampling)
        both = ~np.isnan(a) & ~np.isnan(b)
        binary = is_binary(a[both]) and is_binary(b[both])
        rows.append(
            {
                "model": model,
                "task": task,
                "metric": metric,
                "higher_is_better": higher,
                "n": int(both.sum()),
                "baseline": float(np.nanmean(b)) if both.any() else math.nan,
                "current": float(np.nanmean(a)) if both.any() else math.nan,
                "change": stats["diff"][0, 1],
                "ci_low": stats["ci_low"][0, 1],
                "ci_high": stats["ci_high"][0, 1],
                "test": "mcnemar_exact" if binary else "sign_flip_permutation",
                "p_value": mcnemar_exact(a[both], b[both]) if binary else stats["p"][0, 1],
            }
        )
    frame = pd.DataFrame(
        rows, columns=[c for c in BASELINE_COLUMNS if c not in ("p_holm", "verdict")]
    )
    frame["p_holm"] = np.nan
    for task in frame["task"].unique():
        index = frame.index[frame["task"] == task]
        frame.loc[index, "p_holm"] = holm(frame.loc[index, "p_value"].tolist())
    frame["verdict"] = [_verdict(r) for r in frame.itertuples()]
    notes = []
    for what, ours, theirs in (
        ("model", set(current.models()), set(baseline.models())),
        ("task", set(current.tasks()), set(baseline.tasks())),
    ):
        notes += [f"{what} {name} only in this run" for name in sorted(ours - theirs)]
        notes += [f"{what} {name} only in the baseline" for name in sorted(theirs - ours)]
    return frame[BASELINE_COLUMNS], notes


def _verdict(row: object) -> str:
    change, p = row.change, row.p_holm
    if change != change or p != p or p >= ALPHA:
        return "no significant change"
    worse = change < 0 if row.higher_is_better else change > 0
    return "REGRESSION" if worse else "improvement"
