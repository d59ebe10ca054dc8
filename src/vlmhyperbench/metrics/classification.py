"""Document classification: map free-text answers to labels, accuracy and macro F1.

A model rarely answers with the bare label ("Это паспорт."), so both the prediction and the
reference go through :func:`normalize_label`: an exact match after normalisation first, then a
label (or one of its synonyms) occurring as a whole word. An answer naming two labels is
ambiguous and maps to no label, i.e. it counts as wrong.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vlmhyperbench.metrics.base import ColumnSums, ValuesStatistic, metric
from vlmhyperbench.metrics.normalize import normalize_text

if TYPE_CHECKING:
    import pandas as pd  # annotations only: the rows arrive as a DataFrame

Synonyms = Mapping[str, Sequence[str]]

PRED_LABEL = "pred_label"
TRUE_LABEL = "true_label"


def _norm(text: str) -> str:
    return normalize_text(text, strip_punctuation=True, normalize_yo=True)


def _label_terms(labels: Sequence[str], synonyms: Synonyms | None) -> dict[str, list[str]]:
    """Normalised spellings of every label: the label itself and its synonyms."""
    frozen = tuple(sorted((k, tuple(v)) for k, v in (synonyms or {}).items()))
    return _terms(tuple(labels), frozen)


@functools.lru_cache(maxsize=64)
def _terms(
    labels: tuple[str, ...], synonyms: tuple[tuple[str, tuple[str, ...]], ...]
) -> dict[str, list[str]]:
    # Cached: a task's labels are the same for each of its samples.
    by_label = dict(synonyms)
    unknown = sorted(set(by_label) - set(labels))
    if unknown:
        raise ValueError(f"synonyms given for unknown labels {unknown}; labels are {list(labels)}")
    terms: dict[str, list[str]] = {}
    for label in labels:
        spellings = {_norm(t) for t in [label, *by_label.get(label, ())]}
        terms[label] = sorted(s for s in spellings if s)
    return terms


def _word_spans(text: str, term: str) -> list[tuple[int, int]]:
    pattern = rf"(?<!\w){re.escape(term)}(?!\w)"
    return [m.span() for m in re.finditer(pattern, text)]


def _inside_other(span: tuple[int, int], others: list[tuple[int, int]]) -> bool:
    start, end = span
    return any(s <= start and end <= e and (e - s) > (end - start) for s, e in others)


def normalize_label(
    answer: str | None, labels: Sequence[str], synonyms: Synonyms | None = None
) -> str | None:
    """Map a free-text answer to one of ``labels``, or ``None`` when none or several match.

    A mention nested inside a longer mention of another label does not count, so with
    labels "passport" and "foreign passport" the answer "foreign passport" is not ambiguous.
    """
    if not isinstance(answer, str):  # None, or NaN from a pandas column
        return None
    text = _norm(answer)
    if not text:
        return None
    terms = _label_terms(labels, synonyms)
    exact = [label for label, spellings in terms.items() if text in spellings]
    if exact:
        return exact[0] if len(exact) == 1 else None
    spans = {
        label: [sp for t in spellings for sp in _word_spans(text, t)]
        for label, spellings in terms.items()
    }
    spans = {label: found for label, found in spans.items() if found}
    winners = []
    for label, found in spans.items():
        others = [sp for other, sps in spans.items() if other != label for sp in sps]
        if any(not _inside_other(sp, others) for sp in found):
            winners.append(label)
    return winners[0] if len(winners) == 1 else None


def reference_label(
    references: Sequence[str], labels: Sequence[str], synonyms: Synonyms | None = None
) -> str:
    """The label of the first reference that maps to one; none mapping is a data error."""
    for ref in references:
        label = normalize_label(ref, labels, synonyms)
        if label is not None:
            return label
    raise ValueError(f"no reference in {list(references)} maps to one of the labels {list(labels)}")


def label_columns(
    prediction: str,
    references: Sequence[str],
    *,
    labels: Sequence[str],
    synonyms: Synonyms | None = None,
) -> dict[str, str | None]:
    """Per-row columns stored next to the score so :func:`macro_f1` need not re-parse text."""
    return {
        PRED_LABEL: normalize_label(prediction, labels, synonyms),
        TRUE_LABEL: reference_label(references, labels, synonyms),
    }


@metric(row_columns=label_columns)
def accuracy(
    prediction: str,
    references: Sequence[str],
    *,
    labels: Sequence[str],
    synonyms: Synonyms | None = None,
) -> float:
    """1.0 when the prediction maps to the reference's label; unmappable answers are wrong."""
    row = label_columns(prediction, references, labels=labels, synonyms=synonyms)
    return 1.0 if row[PRED_LABEL] is not None and row[PRED_LABEL] == row[TRUE_LABEL] else 0.0


def _frame_labels(
    frame: pd.DataFrame, labels: Sequence[str], synonyms: Synonyms | None
) -> tuple[list[str | None], list[str | None]]:
    if PRED_LABEL in frame and TRUE_LABEL in frame:
        return frame[PRED_LABEL].tolist(), frame[TRUE_LABEL].tolist()
    failed = frame["error"].notna() if "error" in frame else [False] * len(frame)
    predicted = [
        None if error else normalize_label(pred, labels, synonyms)
        for pred, error in zip(frame["prediction"], failed, strict=True)
    ]
    truth = [normalize_label(ref, labels, synonyms) for ref in frame["reference"]]
    return predicted, truth


def _class_counts(
    frame: pd.DataFrame, labels: Sequence[str], synonyms: Synonyms | None = None
) -> np.ndarray:
    """Per row and class: [TP…, FP…, FN…] indicators (3·K columns, K = len(labels)).

    A prediction without a label is a miss for its true class (a false negative) and no
    class's false positive.
    """
    predicted, truth = _frame_labels(frame, labels, synonyms)
    pred = np.asarray(predicted, dtype=object)[:, None]
    true = np.asarray(truth, dtype=object)[:, None]
    classes = np.asarray(list(labels), dtype=object)[None, :]
    is_pred, is_true = pred == classes, true == classes
    return np.concatenate(
        [is_pred & is_true, is_pred & ~is_true, ~is_pred & is_true], axis=1
    ).astype(np.float64)


def _per_class(sums: np.ndarray, measure: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(metric per class, present per class, support per class) from summed counts."""
    k = sums.shape[-1] // 3
    tp, fp, fn = sums[..., :k], sums[..., k : 2 * k], sums[..., 2 * k :]
    if measure == "precision":
        num, den = tp, tp + fp
    elif measure == "recall":
        num, den = tp, tp + fn
    else:
        num, den = 2 * tp, 2 * tp + fp + fn
    value = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return value, (tp + fp + fn) > 0, tp + fn


def _averaged(sums: np.ndarray, measure: str, average: str) -> np.ndarray:
    value, present, support = _per_class(np.asarray(sums, dtype=np.float64), measure)
    if average == "macro":
        # Unweighted mean over the classes present in the truth or the predictions.
        count = present.sum(axis=-1)
        total = np.where(present, value, 0.0).sum(axis=-1)
        return np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    weight = support.sum(axis=-1)
    total = (value * support).sum(axis=-1)
    return np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)


def _class_aggregate(measure: str, average: str):
    def from_sums(sums: np.ndarray) -> np.ndarray:
        return _averaged(sums, measure, average)

    def aggregate_fn(
        frame: pd.DataFrame, *, labels: Sequence[str], synonyms: Synonyms | None = None
    ) -> float:
        return float(from_sums(_class_counts(frame, labels, synonyms).sum(axis=0)))

    aggregate_fn.__doc__ = (
        f"{average.capitalize()}-averaged {measure} over the task's labels (corpus level; the "
        "per-row value is correctness). Macro: unweighted mean over the classes present in the "
        "truth or the predictions; weighted: weighted by each class's true count (support)."
    )
    return metric(corpus=ColumnSums(row_stats=_class_counts, from_sums=from_sums))(aggregate_fn)


macro_f1 = _class_aggregate("f1", "macro")
weighted_f1 = _class_aggregate("f1", "weighted")
macro_precision = _class_aggregate("precision", "macro")
weighted_precision = _class_aggregate("precision", "weighted")
macro_recall = _class_aggregate("recall", "macro")
weighted_recall = _class_aggregate("recall", "weighted")

NO_LABEL = "(no label)"


def _confusion(
    frame: pd.DataFrame, *, labels: Sequence[str], synonyms: Synonyms | None = None
) -> dict[str, Any]:
    """Counts of (true label, predicted label); unmappable answers in a ``(no label)`` column."""
    predicted, truth = _frame_labels(frame, labels, synonyms)
    columns = [*labels, NO_LABEL]
    matrix = np.zeros((len(labels), len(columns)), dtype=np.int64)
    row_of = {label: i for i, label in enumerate(labels)}
    col_of = {label: i for i, label in enumerate(columns)}
    for pred, true in zip(predicted, truth, strict=True):
        if true in row_of:
            matrix[row_of[true], col_of[pred if pred in col_of else NO_LABEL]] += 1
    return {
        "confusion_matrix": {
            "rows": "true label",
            "columns": "predicted label",
            "labels": list(labels),
            "predicted": columns,
            "matrix": matrix.tolist(),
        }
    }


def _mean_of_values(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=-1)


@metric(corpus=ValuesStatistic(_mean_of_values), details=_confusion)
def confusion_matrix(frame: pd.DataFrame) -> float:
    """Accuracy as the value; the confusion matrix goes to the score JSON's ``details``."""
    return float(frame["value"].mean())
