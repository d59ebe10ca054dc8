"""Pairwise model comparisons within a run, and a run against a baseline run.

Each pair is compared on the samples both have, with the difference's 95% CI from the paired
cluster bootstrap, a p-value (McNemar's exact test for 0/1 metrics, the clustered sign-flip
permutation test otherwise), Holm's correction over every comparison of the task, and the
minimum detectable difference at 80% power for that many clusters.

Every pair of models is compared, unless the caller names the pairs (a run with variants: see
:mod:`vlmhyperbench.reporting.variants`); then the permutation test draws as many sign flips
as Holm over that many comparisons needs (its smallest p-value is 1 / (flips + 1)), where the
default ``n_boot`` flips would leave every p-value of a large sweep above α after Holm.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Collection, Mapping

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
from vlmhyperbench.stats.resampling import Resampling, cluster_labels, sign_flips

# Runs with variants choose their pairs; their permutation tests get enough sign flips for
# Holm over the task (FLIPS_PER_TEST / α per comparison; at most MAX_FLIPS, and at most
# MAX_FLIP_CELLS signs in all).
FLIPS_PER_TEST = 4
MAX_FLIPS = 100_000
MAX_FLIP_CELLS = 20_000_000
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


def _pair_indices(
    models: list[str], pairs: Collection[tuple[str, str]] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (i < j, in upper-triangle order) of the pairs to compare: every pair, or
    those of ``pairs`` (unordered model-name pairs) whose two models both have rows."""
    if pairs is None:
        return np.triu_indices(len(models), 1)
    position = {model: k for k, model in enumerate(models)}
    chosen = sorted(
        {
            (min(position[a], position[b]), max(position[a], position[b]))
            for a, b in pairs
            if a in position and b in position and a != b
        }
    )
    if not chosen:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    first, second = zip(*chosen, strict=True)
    return np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)


def _flips_for(results: Results, task: str, pairs: Collection[tuple[str, str]], n_boot: int) -> int:
    """Sign flips enough for Holm over the task's chosen comparisons: the smallest permutation
    p-value, 1 / (flips + 1), must be able to fall well below α / m (m comparisons)."""
    m = 0
    for metric in results.metrics(task):
        models = sorted(results.by_metric(task, metric))
        m += len(_pair_indices(models, pairs)[0]) if len(models) > 1 else 0
    return max(n_boot, min(MAX_FLIPS, math.ceil(FLIPS_PER_TEST * m / ALPHA)))


def _draw(clusters: np.ndarray, n_boot: int, n_flips: int, seed: int) -> Resampling:
    """The task's draw; with more sign flips than resamples, the extra ones from their own
    stream (the first ``n_boot`` are those of :meth:`Resampling.draw`)."""
    resampling = Resampling.draw(clusters, n_boot, seed)
    n_flips = min(n_flips, MAX_FLIP_CELLS // max(1, resampling.n_clusters))
    if n_flips <= n_boot:
        return resampling
    rng = np.random.default_rng([seed, 1])
    extra = sign_flips(resampling.n_clusters, n_flips - n_boot, rng)
    return dataclasses.replace(resampling, signs=np.vstack([resampling.signs, extra]))


def compare_task(
    results: Results,
    task: str,
    *,
    n_boot: int,
    seed: int,
    pairs: Collection[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Pairs of models on every metric of ``task`` (each pair once, the better model as A;
    ties: the first by name): every pair, or only ``pairs`` (the report chooses them for runs
    with variants, :func:`vlmhyperbench.reporting.variants.comparison_pairs`)."""
    frames = []
    resampling_cache: dict[bytes, Resampling] = {}
    n_flips = n_boot if pairs is None else _flips_for(results, task, pairs, n_boot)
    for metric in results.metrics(task):
        entries = results.by_metric(task, metric)
        if len(entries) < 2:
            continue
        models, matrix, clusters = _aligned(entries)
        i, j = _pair_indices(models, pairs)
        if not len(i):
            continue
        key = "\0".join(clusters.tolist()).encode()
        if key not in resampling_cache:
            resampling_cache[key] = _draw(clusters, n_boot, n_flips, task_seed(seed, task))
        resampling = resampling_cache[key]
        binary = is_binary(matrix)
        stats = paired_matrix(matrix, resampling, permutation=not binary, pairs=(i, j))
        higher = results.higher_is_better(task, metric)
        means = np.nanmean(matrix, axis=1)
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


def compare_run(
    results: Results,
    *,
    n_boot: int,
    seed: int,
    pairs: Mapping[str, Collection[tuple[str, str]]] | None = None,
) -> pd.DataFrame:
    """Every task's comparisons; ``pairs``: per task, the pairs to compare (a task not in it:
    every pair)."""
    pairs = pairs or {}
    frames = [
        compare_task(results, task, n_boot=n_boot, seed=seed, pairs=pairs.get(task))
        for task in results.tasks()
    ]
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
