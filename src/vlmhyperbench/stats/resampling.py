"""The cluster bootstrap: one resampling engine for every interval and paired test.

A resample draws units with replacement: rows, or clusters of rows (the questions about one
page, ``doc_id``; the field rows of one sample). A statistic that is a function of sums (a mean
is Σ value / Σ 1, a corpus CER Σ edits / Σ length, a paired difference Σ (a − b) / Σ 1) is
resampled through counts: how often each unit is drawn, times the units' summed per-row
statistics — one matrix product per chunk of resamples. Other statistics (a percentile) take
the drawn rows themselves. Draws come in chunks of at most :data:`MAX_CELLS` unit indices, so
memory stays bounded for any number of resamples.

Used by :mod:`vlmhyperbench.metrics.aggregate` (the CIs in every score file) and
:mod:`vlmhyperbench.reporting.stats` / :mod:`~vlmhyperbench.reporting.compare` (the report's
paired bootstrap and sign-flip permutation tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# Upper bound on the unit indices (resamples × units) drawn at once.
MAX_CELLS = 4_000_000


def cluster_labels(sample_ids: np.ndarray, doc_ids: np.ndarray | None = None) -> np.ndarray:
    """Each row's resampling unit: its page, ``d:<doc_id>``, where it has a (non-empty) doc_id,
    else its sample, ``s:<id>`` (so the field rows of one sample are drawn together)."""
    samples = np.char.add("s:", np.asarray(sample_ids).astype(str))
    if doc_ids is None:
        return samples
    import pandas as pd  # the rows' doc ids come from a DataFrame: pandas is loaded already

    docs = np.asarray(doc_ids, dtype=object)
    has_doc = ~pd.isna(docs) & (docs != "")
    return np.where(has_doc, np.char.add("d:", docs.astype(str)), samples)


def cluster_index(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Each row's cluster number (clusters in sorted label order) and the number of clusters."""
    _, inverse = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    return inverse, int(inverse.max()) + 1 if inverse.size else 0


def cluster_sums(stats: np.ndarray, inverse: np.ndarray, n_clusters: int) -> np.ndarray:
    """Per-cluster totals of per-row statistics: (rows, k) → (clusters, k)."""
    columns = np.asarray(stats, dtype=float).T
    return np.stack([np.bincount(inverse, c, minlength=n_clusters) for c in columns], axis=1)


def draws(n_units: int, n_boot: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``n_boot`` resamples of ``n_units`` units with replacement: (resamples, n_units) arrays
    of unit indices, in chunks of at most :data:`MAX_CELLS` indices."""
    if n_units == 0:
        return
    step = max(1, MAX_CELLS // n_units)
    for start in range(0, n_boot, step):
        yield rng.integers(0, n_units, size=(min(step, n_boot - start), n_units))


def unit_counts(index: np.ndarray, n_units: int) -> np.ndarray:
    """How often each unit is drawn in each resample: (resamples, n_units) indices → counts."""
    size = len(index)
    offset = index + (np.arange(size) * n_units)[:, None]
    return np.bincount(offset.ravel(), minlength=size * n_units).reshape(size, n_units)


def bootstrap_counts(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Every resample's unit counts at once, (n_boot, n_units) floats, for matrix products."""
    counts = np.zeros((n_boot, n_units))
    start = 0
    for index in draws(n_units, n_boot, rng):
        counts[start : start + len(index)] = unit_counts(index, n_units)
        start += len(index)
    return counts


def sign_flips(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """A random ±1 per unit per resample: the draws of the sign-flip permutation test."""
    return rng.integers(0, 2, size=(n_boot, n_units)).astype(float) * 2.0 - 1.0


def bootstrap_sums(
    unit_stats: np.ndarray,
    from_sums: Callable[[np.ndarray], np.ndarray],
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """A function of summed statistics, resampled: ``unit_stats`` (units, k) holds each unit's
    statistics; ``from_sums`` maps (resamples, k) sums to (resamples,) values."""
    n = len(unit_stats)
    chunks = [from_sums(unit_counts(index, n) @ unit_stats) for index in draws(n, n_boot, rng)]
    return np.concatenate(chunks)


def bootstrap_statistic(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """A statistic of resampled values: ``statistic`` reduces the last axis of a (resamples,
    n) array of drawn values."""
    return np.concatenate([statistic(values[index]) for index in draws(len(values), n_boot, rng)])


def row_resamples(
    n_rows: int, labels: np.ndarray | None, n_boot: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """The row indices of each resample, one array at a time: rows drawn with replacement, or
    whole clusters where ``labels`` (one per row) is given. For statistics that need the rows
    themselves (one call per resample: the slow path)."""
    if labels is None:
        for index in draws(n_rows, n_boot, rng):
            yield from index
        return
    inverse, n_clusters = cluster_index(labels)
    members = [np.flatnonzero(inverse == c) for c in range(n_clusters)]
    for index in draws(n_clusters, n_boot, rng):
        for chosen in index:
            yield np.concatenate([members[c] for c in chosen])


@dataclass(frozen=True)
class Resampling:
    """Cluster membership of a task's samples and one seeded draw over the clusters, shared
    by every model and metric of the task.

    ``counts`` (n_boot × K): how often each cluster is drawn in each bootstrap resample;
    ``signs`` (n_boot × K): a random ±1 per cluster per permutation (sign-flip) draw.
    """

    inverse: np.ndarray  # sample → cluster index
    n_clusters: int
    counts: np.ndarray
    signs: np.ndarray

    @classmethod
    def draw(cls, labels: np.ndarray, n_boot: int, seed: int) -> Resampling:
        inverse, n_clusters = cluster_index(labels)
        rng = np.random.default_rng(seed)
        counts = bootstrap_counts(n_clusters, n_boot, rng)
        signs = sign_flips(n_clusters, n_boot, rng)
        return cls(inverse=inverse, n_clusters=n_clusters, counts=counts, signs=signs)

    def cluster_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum (…, n_samples) values into (…, K) cluster totals (NaN counts as 0)."""
        values = np.nan_to_num(np.atleast_2d(values), nan=0.0)
        return np.ascontiguousarray(cluster_sums(values.T, self.inverse, self.n_clusters).T)
