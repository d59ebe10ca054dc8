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
resamples whole pages — clusters, not rows. The draws come from
:mod:`vlmhyperbench.stats.resampling`, the engine behind the report's paired tests too.
``n_errors``/``error_rate`` count the group's samples whose prediction failed.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmhyperbench.metrics.base import ColumnSums, ValuesStatistic, extras_of
from vlmhyperbench.runtime.io import stable_hash
from vlmhyperbench.stats.resampling import (
    bootstrap_statistic,
    bootstrap_sums,
    cluster_index,
    cluster_labels,
    cluster_sums,
    row_resamples,
)

if TYPE_CHECKING:
    import pandas as pd  # annotations only: the rows arrive as a DataFrame

# The score files' (and the summary's) groupings, in the order the report shows them.
GROUP_COLUMNS: tuple[str, ...] = ("doc_class", "question_type", "field", "subset")
ValueFn = Callable[["pd.DataFrame"], float]


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


def _error_counts(frame: pd.DataFrame) -> tuple[int, int, float]:
    ids = _ids(frame)
    n_samples = len(set(ids.tolist()))
    if "error" not in frame or n_samples == 0:
        return n_samples, 0, 0.0
    failed = ids[frame["error"].notna().to_numpy()]
    n_errors = len(set(failed.tolist()))
    return n_samples, n_errors, n_errors / n_samples


def _clusters(frame: pd.DataFrame) -> np.ndarray:
    """The bootstrap's resampling unit per row: its page or its sample (see
    :func:`~vlmhyperbench.stats.resampling.cluster_labels`)."""
    doc_ids = frame["doc_id"].to_numpy() if "doc_id" in frame else None
    return cluster_labels(_ids(frame), doc_ids)


def _ratio(sums: np.ndarray) -> np.ndarray:
    return sums[..., 0] / sums[..., 1]


def _row_means(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=-1)


SumStatistics = tuple[np.ndarray | None, Callable[[np.ndarray], np.ndarray] | None]


def _sum_statistics(
    method: Aggregation, frame: pd.DataFrame, values: np.ndarray, clustered: bool
) -> SumStatistics:
    """The per-row statistics and the function of their sums, where the value is one: a sums
    aggregate, or the mean over clustered rows (Σ value / Σ 1, resampling clusters)."""
    if method.row_stats is not None:
        return method.row_stats(frame), method.from_sums
    if method.frame_fn is None and method.statistic is None and clustered:
        return np.column_stack([values, np.ones(len(values))]), _ratio
    return None, None


def _bootstrap(
    method: Aggregation,
    frame: pd.DataFrame,
    values: np.ndarray,
    sums: SumStatistics,
    labels: np.ndarray | None,
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The group's value in each of ``n_boot`` resamples (of ``labels``' clusters, else rows)."""
    unit_stats, from_sums = sums
    if unit_stats is not None:
        return bootstrap_sums(unit_stats, from_sums, n_boot, rng)
    if method.statistic is not None:
        return bootstrap_statistic(values, method.statistic, n_boot, rng)
    if method.frame_fn is not None:
        resamples = row_resamples(len(frame), labels, n_boot, rng)
        return np.array([method.frame_fn(frame.iloc[rows]) for rows in resamples], dtype=float)
    return bootstrap_statistic(values, _row_means, n_boot, rng)


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
    if n == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0, **counts}
    labels = _clusters(frame)
    clustered = len(set(labels.tolist())) < n
    values = frame["value"].to_numpy(dtype=float)
    unit_stats, from_sums = _sum_statistics(method, frame, values, clustered)
    if unit_stats is not None and clustered:
        unit_stats = cluster_sums(unit_stats, *cluster_index(labels))

    if unit_stats is not None:
        value = float(from_sums(unit_stats.sum(axis=0)))
    elif method.statistic is not None:
        value = float(method.statistic(values[None, :])[0])
    elif method.frame_fn is not None:
        value = float(method.frame_fn(frame))
    else:
        value = float(values.mean())

    units = len(unit_stats) if unit_stats is not None else n
    constant = method.frame_fn is None and method.row_stats is None and np.all(values == values[0])
    if units == 1 or constant:
        # Every resample of one unit (or of identical values) gives the value itself.
        point = _as_float(value)
        return {"value": point, "ci_low": point, "ci_high": point, "n": n, **counts}
    boots = np.array([])
    if n_boot > 0:
        sums = (unit_stats, from_sums)
        boots = _bootstrap(method, frame, values, sums, labels if clustered else None, n_boot, rng)
    boots = boots[~np.isnan(boots)]
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(boots, [alpha, 1.0 - alpha]) if boots.size else (None, None)
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
        missing = frame[column].isna()
        keys = np.array(
            [None if gone else str(k) for k, gone in zip(frame[column], missing, strict=True)],
            dtype=object,
        )
        per_group = {}
        for key in sorted({k for k in keys if k is not None}):
            rows = frame[keys == key]
            per_group[key] = summarize(rows, rng=_rng(seed, column, key), **options)
        result["groups"][column] = per_group
    return result
