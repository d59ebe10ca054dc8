"""Metrics: per-sample scores, corpus aggregates, bootstrap CIs and the scoring stage."""

from vlmhyperbench.metrics.aggregate import aggregate
from vlmhyperbench.metrics.classification import accuracy, macro_f1, normalize_label
from vlmhyperbench.metrics.loader import Metric, MetricLoadError, load_metric
from vlmhyperbench.metrics.scoring import score_predictions
from vlmhyperbench.metrics.text import anls, cer, exact_match, wer

__all__ = [
    "Metric",
    "MetricLoadError",
    "accuracy",
    "aggregate",
    "anls",
    "cer",
    "exact_match",
    "load_metric",
    "macro_f1",
    "normalize_label",
    "score_predictions",
    "wer",
]
