"""Performance metrics read from the prediction records (``performance`` of each line).

The per-row value is the sample's measurement: ``latency_ms``, ``ttft_ms``, ``tpot_ms``,
``peak_memory_mb``, or the end-to-end token rate ``completion_tokens / latency`` (as the
leaderboard's performance table). A failed request or a missing field gives NaN — left out of
the statistic; :func:`error_rate` counts the failures. Group values: a percentile
(:func:`percentile`, numpy's linear interpolation), the maximum (:func:`maximum`) or the mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmhyperbench.metrics.base import ValuesStatistic, metric

if TYPE_CHECKING:
    import pandas as pd  # annotations only: the rows arrive as a DataFrame


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _performance(sample: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not sample or sample.get("error") is not None:
        return None
    record = sample.get("record") or {}
    performance = record.get("performance")
    return performance if isinstance(performance, Mapping) else None


def _field(sample: Mapping[str, Any] | None, name: str) -> float:
    performance = _performance(sample)
    return math.nan if performance is None else _number(performance.get(name))


def latency_ms(
    prediction: str, references: Sequence[str], *, sample: Mapping[str, Any] | None = None
) -> float:
    """End-to-end request latency in ms (NaN for a failed request)."""
    return _field(sample, "latency_ms")


def ttft_ms(
    prediction: str, references: Sequence[str], *, sample: Mapping[str, Any] | None = None
) -> float:
    """Time to first token in ms."""
    return _field(sample, "ttft_ms")


def tpot_ms(
    prediction: str, references: Sequence[str], *, sample: Mapping[str, Any] | None = None
) -> float:
    """Time per output token after the first, in ms."""
    return _field(sample, "tpot_ms")


def peak_memory_mb(
    prediction: str, references: Sequence[str], *, sample: Mapping[str, Any] | None = None
) -> float:
    """Peak accelerator (or process) memory during the request, in MB, as the wrapper reports."""
    return _field(sample, "peak_memory_mb")


def tokens_per_s(
    prediction: str, references: Sequence[str], *, sample: Mapping[str, Any] | None = None
) -> float:
    """Completion tokens over the whole request latency (end-to-end throughput per request)."""
    latency, tokens = _field(sample, "latency_ms"), _field(sample, "completion_tokens")
    if math.isnan(latency) or math.isnan(tokens) or latency <= 0:
        return math.nan
    return tokens / (latency / 1000.0)


def error_rate(
    prediction: str, references: Sequence[str], *, sample: Mapping[str, Any] | None = None
) -> float:
    """1.0 when the request failed (an error, a null prediction or no line at all), else 0.0."""
    return 0.0 if sample is not None and sample.get("error") is None else 1.0


def _percentile(values: np.ndarray, *, q: float = 50.0) -> np.ndarray:
    return np.percentile(values, q, axis=-1)


def _maximum(values: np.ndarray) -> np.ndarray:
    return values.max(axis=-1)


@metric(corpus=ValuesStatistic(_percentile))
def percentile(frame: pd.DataFrame, *, q: float = 50.0) -> float:
    """The q-th percentile of the group's values (NaN rows left out)."""
    values = frame["value"].to_numpy(dtype=float)
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q)) if values.size else math.nan


@metric(corpus=ValuesStatistic(_maximum))
def maximum(frame: pd.DataFrame) -> float:
    """The largest of the group's values (NaN rows left out)."""
    values = frame["value"].to_numpy(dtype=float)
    values = values[~np.isnan(values)]
    return float(values.max()) if values.size else math.nan
