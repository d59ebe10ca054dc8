"""Group-wise aggregation of per-sample scores with seeded bootstrap confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from vlmhyperbench.io import stable_hash

GROUP_COLUMNS: tuple[str, ...] = ("doc_class", "question_type", "subset")
ValueFn = Callable[[pd.DataFrame], float]

# Upper bound on resampled indices held at once by the vectorised mean bootstrap.
_MAX_CHUNK_CELLS = 4_000_000


def _rng(seed: int, column: str, group: str) -> np.random.Generator:
    """A generator per group, so a group's interval does not depend on which other groups exist."""
    return np.random.default_rng([seed, int(stable_hash([column, group]), 16)])


def _mean_bootstrap(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    n = len(values)
    chunk = max(1, _MAX_CHUNK_CELLS // n)
    means = []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        means.append(values[rng.integers(0, n, size=(size, n))].mean(axis=1))
    return np.concatenate(means)


def _frame_bootstrap(
    frame: pd.DataFrame, value_fn: ValueFn, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    n = len(frame)
    return np.array(
        [value_fn(frame.iloc[rng.integers(0, n, size=n)]) for _ in range(n_boot)], dtype=float
    )


def _as_float(value: float) -> float | None:
    """JSON-safe float: NaN becomes None."""
    value = float(value)
    return None if math.isnan(value) else value


def summarize(
    frame: pd.DataFrame,
    *,
    value_fn: ValueFn | None,
    n_boot: int,
    rng: np.random.Generator,
    ci: float,
) -> dict[str, Any]:
    """``{"value", "ci_low", "ci_high", "n"}`` for one group of rows (percentile bootstrap)."""
    n = len(frame)
    if n == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    values = frame["value"].to_numpy(dtype=float)
    value = float(values.mean()) if value_fn is None else float(value_fn(frame))
    constant = value_fn is None and bool(np.all(values == values[0]))
    if n == 1 or constant:
        # Every resample of one row (or of identical values) gives the value itself.
        point = _as_float(value)
        return {"value": point, "ci_low": point, "ci_high": point, "n": n}
    if n_boot <= 0:
        return {"value": _as_float(value), "ci_low": None, "ci_high": None, "n": n}
    if value_fn is None:
        boots = _mean_bootstrap(values, n_boot, rng)
    else:
        boots = _frame_bootstrap(frame, value_fn, n_boot, rng)
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(boots, [alpha, 1.0 - alpha])
    return {"value": _as_float(value), "ci_low": _as_float(low), "ci_high": _as_float(high), "n": n}


def aggregate(
    frame: pd.DataFrame,
    *,
    value_fn: ValueFn | None = None,
    group_columns: Sequence[str] = GROUP_COLUMNS,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, Any]:
    """Overall and per-group values with bootstrap CIs.

    ``value_fn`` computes a group's value from its rows (a corpus metric such as macro F1);
    ``None`` means the mean of ``value``, bootstrapped vectorised. Rows whose group column is
    null are left out of that grouping; a column that is missing or all null is omitted.
    Returns ``{"overall": {...}, "groups": {column: {group: {...}}}}``.
    """
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be between 0 and 1, got {ci}")
    options = {"value_fn": value_fn, "n_boot": n_boot, "ci": ci}
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
