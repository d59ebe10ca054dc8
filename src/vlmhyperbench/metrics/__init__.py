"""Metrics: per-sample scores, corpus aggregates, bootstrap CIs and the scoring stage.

The names below are imported when first used (PEP 562): planning imports this package's small
modules (the score spec, the loader's checks) without pandas, whose import costs every
``snakemake`` call ~0.4 s and ~95 MiB.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Metric": "loader",
    "MetricLoadError": "loader",
    "load_metric": "loader",
    "accuracy": "classification",
    "macro_f1": "classification",
    "normalize_label": "classification",
    "aggregate": "aggregate",
    "score_predictions": "scoring",
    "anls": "text",
    "cer": "text",
    "exact_match": "text",
    "wer": "text",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
