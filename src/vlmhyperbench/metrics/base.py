"""What every metric shares: the reference check and the hooks scoring looks for.

A metric is ``score(prediction, references, *, sample=None, **params)``: ``prediction`` is the
text to score ("" for a failed request), ``references`` the sample's answers, ``sample`` (only
passed to metrics whose signature names it) a dict with the manifest fields and the prediction
record (see :func:`vlmhyperbench.metrics.scoring.sample_view`). It returns a float (``nan`` =
not applicable, left out of the aggregate) or a ``{field: float}`` mapping (one row per field).

Optional attribute on the function, set with the decorator below:
``row_columns(prediction, references, **params)``, extra per-row columns for an aggregate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def require_references(references: Sequence[str]) -> Sequence[str]:
    if isinstance(references, str):
        raise TypeError("references must be a list of strings, not a single string")
    if not references:
        raise ValueError("at least one reference answer is required")
    return references


def with_row_columns(columns: Callable[..., dict[str, Any]]) -> Callable[[F], F]:
    """Attach per-row extra columns (stored in the score parquet, read by the aggregate)."""

    def attach(fn: F) -> F:
        fn.row_columns = columns  # type: ignore[attr-defined]
        return fn

    return attach
