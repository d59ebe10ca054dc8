"""Resolve the ``module:attr`` import paths that metric registry entries name."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

ScoreFn = Callable[..., float]
AggregateFn = Callable[..., float]
ColumnsFn = Callable[..., dict[str, Any]]


class MetricLoadError(ValueError):
    """An import path that does not resolve to a callable; the message names the path."""


def import_object(path: str) -> Any:
    """Import ``package.module:attribute`` (the attribute may be dotted)."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise MetricLoadError(
            f"{path!r}: expected an import path of the form 'package.module:name'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise MetricLoadError(f"{path!r}: cannot import module {module_name!r}: {exc}") from exc
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError as exc:
            raise MetricLoadError(
                f"{path!r}: module {module_name!r} has no attribute {attr_path!r}"
            ) from exc
    return obj


def _callable(path: str) -> Callable[..., Any]:
    obj = import_object(path)
    if not callable(obj):
        raise MetricLoadError(f"{path!r}: {type(obj).__name__} object is not callable")
    return obj


@dataclass(frozen=True)
class Metric:
    """A per-sample score function plus an optional corpus-level aggregate.

    ``row_columns`` is the score function's optional ``row_columns`` attribute: extra per-row
    values (e.g. the predicted label) that scoring stores for the aggregate to use.
    """

    implementation: str
    score: ScoreFn
    aggregate_path: str | None = None
    aggregate: AggregateFn | None = None
    row_columns: ColumnsFn | None = None

    def score_one(
        self, prediction: str, references: Sequence[str], params: Mapping[str, Any]
    ) -> float:
        return float(self.score(prediction, list(references), **params))

    def corpus_value(self, frame: pd.DataFrame, params: Mapping[str, Any]) -> float:
        """The group value: the custom aggregate, else the mean of ``value``."""
        if self.aggregate is None:
            return float(frame["value"].mean())
        return float(self.aggregate(frame, **params))


def load_metric(implementation: str, aggregate: str | None = None) -> Metric:
    """Load a metric from registry import paths, e.g. ``vlmhyperbench.metrics.text:anls``."""
    score = _callable(implementation)
    aggregate_fn = _callable(aggregate) if aggregate else None
    return Metric(
        implementation=implementation,
        score=score,
        aggregate_path=aggregate or None,
        aggregate=aggregate_fn,
        row_columns=getattr(score, "row_columns", None),
    )
