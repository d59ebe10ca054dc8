"""Resolve the metric implementations that registry entries name.

``implementation`` (and ``aggregate``) is either an import path ``package.module:function`` or
the bare name of an entry point in the group ``vlmhyperbench.metrics`` — how an installed
plugin package offers a metric::

    [project.entry-points."vlmhyperbench.metrics"]
    char_overlap = "my_metrics.scores:char_overlap"

and a registry YAML then says ``implementation: char_overlap``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from vlmhyperbench.metrics.aggregate import Aggregation, accepted
from vlmhyperbench.metrics.base import AggregateFn, ColumnsFn, DetailsFn, ScoreFn, extras_of

ENTRY_POINT_GROUP = "vlmhyperbench.metrics"
_ENTRY_POINT_NAME = re.compile(r"^[A-Za-z0-9_][\w.-]*$")


class MetricLoadError(ValueError):
    """An implementation that does not resolve to a callable; the message names it."""


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


def metric_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def import_path(reference: str) -> str:
    """``module:attr`` for a reference: itself, or the value of the entry point it names."""
    if ":" in reference:
        return reference
    if not _ENTRY_POINT_NAME.match(reference):
        raise MetricLoadError(
            f"{reference!r}: expected an import path of the form 'package.module:name' "
            f"or the name of an entry point in the group {ENTRY_POINT_GROUP!r}"
        )
    found = metric_entry_points().get(reference)
    if found is None:
        known = ", ".join(sorted(metric_entry_points())) or "none installed"
        raise MetricLoadError(
            f"{reference!r}: no entry point of that name in the group {ENTRY_POINT_GROUP!r} "
            f"(installed: {known}); an import path needs the form 'package.module:name'"
        )
    return found.value


def resolve(reference: str) -> Any:
    return import_object(import_path(reference))


def _callable(reference: str) -> Callable[..., Any]:
    obj = resolve(reference)
    if not callable(obj):
        raise MetricLoadError(f"{reference!r}: {type(obj).__name__} object is not callable")
    return obj


@dataclass(frozen=True)
class Metric:
    """A per-sample score function plus its corpus-level aggregate, and their extras
    (declared with :func:`vlmhyperbench.metrics.base.metric`; a plain function has none)."""

    implementation: str
    score: ScoreFn
    aggregate: AggregateFn | None = None

    @property
    def row_columns(self) -> ColumnsFn | None:
        return extras_of(self.score).row_columns

    @property
    def details(self) -> DetailsFn | None:
        return extras_of(self.aggregate).details

    def _hooks(self) -> list[Callable[..., Any]]:
        declared = [*extras_of(self.score).hooks(), *extras_of(self.aggregate).hooks()]
        return [fn for fn in (self.score, self.aggregate, *declared) if fn is not None]

    def takes(self, name: str) -> bool:
        """Whether the score function or its aggregate has a parameter ``name``."""
        for fn in (self.score, self.aggregate, self.details):
            if fn is not None and name in accepted(fn, {name: None}):
                return True
        return False

    def unknown_params(self, params: Mapping[str, Any]) -> list[str]:
        """The names in ``params`` that neither the metric nor any of its hooks takes."""
        return sorted(
            name
            for name in params
            if not any(name in accepted(fn, {name: None}) for fn in self._hooks())
        )

    def accepted_params(self) -> list[str]:
        """What the score function takes besides prediction, references and sample."""
        return sorted(_parameters(self.score) - {"prediction", "references", "sample"})

    def check_params(self, params: Mapping[str, Any]) -> None:
        """A param that neither the metric nor its aggregate takes is a typo: fail loudly."""
        unknown = self.unknown_params(params)
        if unknown:
            raise ValueError(
                f"{self.implementation}: unknown parameter(s) {unknown}; "
                f"{self.score.__name__} takes {sorted(_parameters(self.score))}"
            )

    @property
    def wants_sample(self) -> bool:
        return "sample" in _parameters(self.score)

    def bind(self, params: Mapping[str, Any]) -> Callable[..., Any]:
        """``fn(prediction, references, sample=None)`` with the params the score function takes
        worked out once (reading a signature costs more than most metrics)."""
        score, kwargs, wants_sample = self.score, accepted(self.score, params), self.wants_sample

        def call(
            prediction: str, references: Sequence[str], sample: Mapping[str, Any] | None = None
        ) -> Any:
            if wants_sample:
                return score(prediction, list(references), sample=sample, **kwargs)
            return score(prediction, list(references), **kwargs)

        return call

    def aggregation(self, params: Mapping[str, Any]) -> Aggregation:
        return Aggregation.of(self.aggregate, params)


def _parameters(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def load_metric(implementation: str, aggregate: str | None = None) -> Metric:
    """Load a metric by import path (``vlmhyperbench.metrics.text:anls``) or entry-point name."""
    score = _callable(implementation)
    aggregate_fn = _callable(aggregate) if aggregate else None
    return Metric(
        implementation=implementation,
        score=score,
        aggregate=aggregate_fn,
    )
