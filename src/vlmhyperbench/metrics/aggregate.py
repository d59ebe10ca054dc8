"""Group-wise aggregation of per-row scores with seeded bootstrap confidence intervals.

Separate from the metrics: a metric gives per-row values (and optional per-row columns); this
module turns a group of rows into ``{"value", "ci_low", "ci_high", "n", "n_samples",
"n_errors", "error_rate"}``, overall and per group column. How a group's value is computed:

- the mean of ``value`` (default);
- a vectorised statistic of the values (``ValuesStatistic`` in :mod:`.base`, e.g. a percentile);
- a function of column sums (``ColumnSums`` in :mod:`.base`, e.g. corpus CER = Σ edits / Σ length,
  micro/macro F1 from per-class counts, corpus BLEU from n-gram counts), bootstrapped cheaply;
- any ``fn(frame) -> float`` (slow bootstrap: one call per resample).

Rows whose ``value`` is NaN (not applicable, e.g. latency of a failed request) are left out of
means and statistics. When an ``id`` occurs in several rows (per-field metrics) the bootstrap
resamples ids, and where rows carry a ``doc_id`` (several questions about one page) it
resamples whole pages — clusters, not rows. ``n_errors``/``error_rate`` count the group's samples
whose prediction failed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vlmhyperbench.metrics.base import ColumnSums, ValuesStatistic, extras_of
from vlmhyperbench.runtime.io import stable_hash

GROUP_COLUMNS: tuple[str, ...] = ("doc_class", "question_type", "subset", "field")
ValueFn = Callable[[pd.DataFrame], float]

# Upper bound on resampled cells held at once by the vectorised bootstraps.
_MAX_CHUNK_CELLS = 4_000_000


def accepted(fn: Callable[..., Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that ``fn`` takes (all of them if it has ``**kwargs``)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(params)
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return dict(params)
    return {k: v for k, v in params.items() if k in parameters}


@dataclass(frozen=True)
class Aggregation:
    """How one group's value is computed (see the module docstring); all None = the mean."""

    frame_fn: ValueFn | None = None
    row_stats: Callable[[pd.DataFrame], np.ndarray] | None = None
    from_sums: Callable[[np.ndarray], np.ndarray] | None = None
    statistic: Callable[[np.ndarray], np.ndarray] | None = None

    @classmethod
    def of(cls, fn: Callable[..., Any] | None, params: Mapping[str, Any]) -> Aggregation:
        """The aggregation of a registry ``aggregate`` function (None = mean) with its params."""
        if fn is None:
            return cls()
        corpus = extras_of(fn).corpus
        if isinstance(corpus, ColumnSums):
            row_stats, from_sums = corpus.row_stats, corpus.from_sums
            stats_kw, sums_kw = accepted(row_stats, params), accepted(from_sums, params)
            return cls(
                row_stats=lambda frame: np.asarray(row_stats(frame, **stats_kw), dtype=float),
                from_sums=lambda sums: np.asarray(from_sums(sums, **sums_kw), dtype=float),
            )
        if isinstance(corpus, ValuesStatistic):
            statistic = corpus.statistic
            stat_kw = accepted(statistic, params)
            return cls(statistic=lambda values: np.asarray(statistic(values, **stat_kw)))
        kw = accepted(fn, params)
        return cls(frame_fn=lambda frame: float(fn(frame, **kw)))

    @property
    def drops_nan(self) -> bool:
        return self.frame_fn is None and self.row_stats is None


def _rng(seed: int, column: str, group: str) -> np.random.Generator:
    """A generator per group, so a group's interval does not depend on which other groups exist."""
    return np.random.default_rng([seed, int(stable_hash([column, group]), 16)])


def _chunks(n_boot: int, width: int) -> list[int]:
    chunk = max(1, _MAX_CHUNK_CELLS // max(1, width))
    return [min(chunk, n_boot - start) for start in range(0, n_boot, chunk)]


def _mean_bootstrap(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    n = len(values)
    return np.concatenate(
        [values[rng.integers(0, n, size=(size, n))].mean(axis=1) for size in _chunks(n_boot, n)]
    )


def _statistic_bootstrap(
    values: np.ndarray, statistic: Callable, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    n = len(values)
    return np.concatenate(
        [statistic(values[rng.integers(0, n, size=(size, n))]) for size in _chunks(n_boot, n)]
    )


def _sums_bootstrap(
    stats: np.ndarray, from_sums: Callable, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Resample rows of ``stats`` (n, k): counts matrix @ stats, then ``from_sums``."""
    n = len(stats)
    out = []
    for size in _chunks(n_boot, n):
        index = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        counts = np.bincount(index.ravel(), minlength=size * n).reshape(size, n)
        out.append(from_sums(counts @ stats))
    return np.concatenate(out)


def _frame_bootstrap(
    frame: pd.DataFrame,
    value_fn: ValueFn,
    n_boot: int,
    rng: np.random.Generator,
    clusters: np.ndarray | None,
) -> np.ndarray:
    if clusters is None:
        n = len(frame)
        return np.array(
            [value_fn(frame.iloc[rng.integers(0, n, size=n)]) for _ in range(n_boot)], dtype=float
        )
    keys, inverse = np.unique(clusters, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(keys))]
    out = []
    for _ in range(n_boot):
        chosen = rng.integers(0, len(keys), size=len(keys))
        out.append(value_fn(frame.iloc[np.concatenate([members[c] for c in chosen])]))
    return np.array(out, dtype=float)


def _cluster_sums(stats: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(clusters, return_inverse=True)
    summed = np.zeros((inverse.max() + 1, stats.shape[1]))
    np.add.at(summed, inverse, stats)
    return summed


def _as_float(value: Any) -> float | None:
    """JSON-safe float: NaN (or None) becomes None."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _ids(frame: pd.DataFrame) -> np.ndarray:
    if "id" in frame:
        return frame["id"].astype(str).to_numpy()
    return np.arange(len(frame)).astype(str)


def _clusters(frame: pd.DataFrame) -> np.ndarray:
    """The bootstrap's resampling unit per row: the page (``doc_id``) where the row has one,
    else the sample id (so a per-field metric still resamples whole samples)."""
    ids = np.array(["s:" + i for i in _ids(frame).tolist()], dtype=object)
    if "doc_id" not in frame:
        return ids
    has_doc = frame["doc_id"].notna().to_numpy()
    ids[has_doc] = ["d:" + str(d) for d in frame["doc_id"].to_numpy()[has_doc]]
    return ids


def _error_counts(frame: pd.DataFrame) -> tuple[int, int, float]:
    ids = _ids(frame)
    n_samples = len(set(ids.tolist()))
    if "error" not in frame or n_samples == 0:
        return n_samples, 0, 0.0
    failed = ids[frame["error"].notna().to_numpy()]
    n_errors = len(set(failed.tolist()))
    return n_samples, n_errors, n_errors / n_samples


def summarize(
    frame: pd.DataFrame,
    *,
    method: Aggregation | None = None,
    value_fn: ValueFn | None = None,
    n_boot: int,
    rng: np.random.Generator,
    ci: float,
) -> dict[str, Any]:
    """The entry of one group of rows (percentile bootstrap CI)."""
    method = method or Aggregation(frame_fn=value_fn)
    n_samples, n_errors, error_rate = _error_counts(frame)
    counts = {"n_samples": n_samples, "n_errors": n_errors, "error_rate": error_rate}
    if method.drops_nan and len(frame):
        frame = frame[~np.isnan(frame["value"].to_numpy(dtype=float))]
    n = len(frame)
    empty = {"value": None, "ci_low": None, "ci_high": None, "n": 0, **counts}
    if n == 0:
        return empty
    ids = _clusters(frame)
    clustered = len(set(ids.tolist())) < n
    values = frame["value"].to_numpy(dtype=float)
    stats = None
    from_sums = method.from_sums
    if method.row_stats is not None:
        stats = method.row_stats(frame)
    elif method.frame_fn is None and method.statistic is None and clustered:
        stats = np.column_stack([values, np.ones(n)])  # mean over rows, resampling ids

        def from_sums(sums: np.ndarray) -> np.ndarray:
            return sums[..., 0] / sums[..., 1]

    if stats is not None and clustered:
        stats = _cluster_sums(stats, ids)

    if stats is not None:
        value = float(from_sums(stats.sum(axis=0)))
    elif method.statistic is not None:
        value = float(method.statistic(values[None, :])[0])
    elif method.frame_fn is not None:
        value = float(method.frame_fn(frame))
    else:
        value = float(values.mean())

    units = len(stats) if stats is not None else n
    constant = method.frame_fn is None and method.row_stats is None and np.all(values == values[0])
    if units == 1 or constant:
        # Every resample of one unit (or of identical values) gives the value itself.
        point = _as_float(value)
        return {"value": point, "ci_low": point, "ci_high": point, "n": n, **counts}
    if n_boot <= 0:
        return {"value": _as_float(value), "ci_low": None, "ci_high": None, "n": n, **counts}
    if stats is not None:
        boots = _sums_bootstrap(stats, from_sums, n_boot, rng)
    elif method.statistic is not None:
        boots = _statistic_bootstrap(values, method.statistic, n_boot, rng)
    elif method.frame_fn is not None:
        boots = _frame_bootstrap(frame, method.frame_fn, n_boot, rng, ids if clustered else None)
    else:
        boots = _mean_bootstrap(values, n_boot, rng)
    boots = boots[~np.isnan(boots)]
    if boots.size == 0:
        return {"value": _as_float(value), "ci_low": None, "ci_high": None, "n": n, **counts}
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(boots, [alpha, 1.0 - alpha])
    return {
        "value": _as_float(value),
        "ci_low": _as_float(low),
        "ci_high": _as_float(high),
        "n": n,
        **counts,
    }


def aggregate(
    frame: pd.DataFrame,
    *,
    method: Aggregation | None = None,
    value_fn: ValueFn | None = None,
    group_columns: Sequence[str] = GROUP_COLUMNS,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, Any]:
    """Overall and per-group entries with bootstrap CIs.

    ``method`` (or the shorthand ``value_fn``, a corpus function of the rows) says how a group's
    value is computed; neither means the mean of ``value``. Rows whose group column is null are
    left out of that grouping; a column that is missing or all null is omitted.
    Returns ``{"overall": {...}, "groups": {column: {group: {...}}}}``.
    """
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be between 0 and 1, got {ci}")
    options = {"method": method, "value_fn": value_fn, "n_boot": n_boot, "ci": ci}
    result: dict[str, Any] = {
        "overall": summarize(frame, rng=_rng(seed, "overall", "all"), **options),
        "groups": {},
    }
    for column in group_columns:
        if column not in frame or frame[column].isna().all():
            continue
        keys = np.array([None if pd.isna(k) else str(k) for k in frame[column]], dtype=object)
        per_group = {}
        for key in sorted({k for k in keys if k is not None}):
            rows = frame[keys == key]
            per_group[key] = summarize(rows, rng=_rng(seed, column, key), **options)
        result["groups"][column] = per_group
    return result
