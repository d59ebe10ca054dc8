"""The metric contract: what a metric function is, and the one decorator for its extras.

A metric is a :class:`ScoreFn`, ``score(prediction, references, *, sample=None, **params)``:
``prediction`` is the text to score ("" for a failed request), ``references`` the sample's
answers, ``sample`` (only passed to metrics whose signature names it) a dict with the manifest
fields and the prediction record (see :func:`vlmhyperbench.metrics.scoring.sample_view`). It
returns a float (``nan`` = not applicable, left out of the aggregate) or a ``{field: float}``
mapping (one row per field). A registry ``aggregate`` is an :class:`AggregateFn`,
``aggregate(frame, **params) -> float``: a group's value from its score rows.

A plain function is a complete metric (a plugin's metrics usually are). Extras are declared
with :func:`metric` and read with :func:`extras_of`::

    @metric(row_columns=error_columns)            # per-row columns stored in the score parquet
    def cer(prediction, references, ...) -> float: ...

    @metric(corpus=ColumnSums(row_stats=error_stats, from_sums=error_rate_of_sums))
    def corpus_error_rate(frame) -> float: ...   # the group value, bootstrapped from sums

Every extra takes the registry params it names, like the function it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class ScoreFn(Protocol):
    """A per-sample score: a float (``nan`` = not applicable) or ``{field: float}``."""

    def __call__(
        self, prediction: str, references: Sequence[str], /, **params: Any
    ) -> float | Mapping[str, float]: ...


class AggregateFn(Protocol):
    """A group's value from its score rows (``value`` plus any ``row_columns``)."""

    def __call__(self, frame: pd.DataFrame, /, **params: Any) -> float: ...


ColumnsFn = Callable[..., dict[str, Any]]
"""``(prediction, references, **params) -> {column: value}``: extra columns of one score row."""

DetailsFn = Callable[..., dict[str, Any]]
"""``(frame, **params) -> {key: json}``: added to the score JSON's ``details``."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ColumnSums:
    """A group value that is a function of column sums (corpus CER, micro F1, corpus BLEU).

    ``row_stats(frame, **params)`` gives an (n, k) array of per-row statistics;
    ``from_sums(sums, **params)`` maps (..., k) sums to (...) values. The bootstrap resamples
    rows as a counts matrix times the statistics, without calling the aggregate again.
    """

    row_stats: Callable[..., np.ndarray]
    from_sums: Callable[..., np.ndarray]


@dataclass(frozen=True)
class ValuesStatistic:
    """A group value that is a statistic of the row values (a percentile, the maximum):
    ``statistic(values, **params)`` reduces the last axis of a 2-D array (one resample a row)."""

    statistic: Callable[..., np.ndarray]


@dataclass(frozen=True)
class MetricExtras:
    """What a metric or aggregate function declares besides being called.

    On a score function: ``row_columns``. On an aggregate: ``corpus`` (how its value is
    bootstrapped cheaply) and ``details`` (extra JSON, e.g. the confusion matrix).
    """

    row_columns: ColumnsFn | None = None
    corpus: ColumnSums | ValuesStatistic | None = None
    details: DetailsFn | None = None

    def hooks(self) -> list[Callable[..., Any]]:
        """The declared functions, each called with the registry params it names."""
        corpus: list[Callable[..., Any]] = []
        if isinstance(self.corpus, ColumnSums):
            corpus = [self.corpus.row_stats, self.corpus.from_sums]
        elif isinstance(self.corpus, ValuesStatistic):
            corpus = [self.corpus.statistic]
        return [fn for fn in (self.row_columns, *corpus, self.details) if fn is not None]


_NO_EXTRAS = MetricExtras()
_EXTRAS_ATTRIBUTE = "__metric_extras__"


def metric(
    *,
    row_columns: ColumnsFn | None = None,
    corpus: ColumnSums | ValuesStatistic | None = None,
    details: DetailsFn | None = None,
) -> Callable[[F], F]:
    """Declare a metric's (or an aggregate's) extras; the function itself is unchanged."""
    extras = MetricExtras(row_columns=row_columns, corpus=corpus, details=details)

    def declare(fn: F) -> F:
        setattr(fn, _EXTRAS_ATTRIBUTE, extras)
        return fn

    return declare


def extras_of(fn: Callable[..., Any] | None) -> MetricExtras:
    """The extras declared with :func:`metric`; none for a plain function (or no function)."""
    extras: MetricExtras = getattr(fn, _EXTRAS_ATTRIBUTE, _NO_EXTRAS)
    return extras


def require_references(references: Sequence[str]) -> Sequence[str]:
    if isinstance(references, str):
        raise TypeError("references must be a list of strings, not a single string")
    if not references:
        raise ValueError("at least one reference answer is required")
    return references
