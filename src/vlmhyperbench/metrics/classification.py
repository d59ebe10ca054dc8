"""Document classification: map free-text answers to labels, accuracy and macro F1.

A model rarely answers with the bare label ("Это паспорт."), so both the prediction and the
reference go through :func:`normalize_label`: an exact match after normalisation first, then a
label (or one of its synonyms) occurring as a whole word. An answer naming two labels is
ambiguous and maps to no label, i.e. it counts as wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from vlmhyperbench.metrics.normalize import normalize_text

Synonyms = Mapping[str, Sequence[str]]

PRED_LABEL = "pred_label"
TRUE_LABEL = "true_label"


def _norm(text: str) -> str:
    return normalize_text(text, lowercase=True, strip_punctuation=True, normalize_yo=True)


def _label_terms(labels: Sequence[str], synonyms: Synonyms | None) -> dict[str, list[str]]:
    """Normalised spellings of every label: the label itself and its synonyms."""
    synonyms = synonyms or {}
    unknown = sorted(set(synonyms) - set(labels))
    if unknown:
        raise ValueError(f"synonyms given for unknown labels {unknown}; labels are {list(labels)}")
    terms: dict[str, list[str]] = {}
    for label in labels:
        spellings = {_norm(t) for t in [label, *synonyms.get(label, [])]}
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


def _with_row_columns(fn: Callable[..., float], columns: Callable[..., dict[str, Any]]) -> None:
    # Scoring looks for ``row_columns`` to add per-row columns (see metrics.loader.Metric).
    fn.row_columns = columns  # type: ignore[attr-defined]


_with_row_columns(accuracy, label_columns)


def _frame_labels(
    frame: pd.DataFrame, labels: Sequence[str], synonyms: Synonyms | None
) -> tuple[list[str | None], list[str | None]]:
    if PRED_LABEL in frame and TRUE_LABEL in frame:
        return frame[PRED_LABEL].tolist(), frame[TRUE_LABEL].tolist()
    errors = (
        frame["error"] if "error" in frame else pd.Series([None] * len(frame), index=frame.index)
    )
    predicted = [
        None if err is not None and not pd.isna(err) else normalize_label(pred, labels, synonyms)
        for pred, err in zip(frame["prediction"], errors, strict=True)
    ]
    truth = [normalize_label(ref, labels, synonyms) for ref in frame["reference"]]
    return predicted, truth


def macro_f1(
    frame: pd.DataFrame, *, labels: Sequence[str], synonyms: Synonyms | None = None
) -> float:
    """Unweighted mean of per-class F1 over the classes present in the truth or the predictions.

    Uses the ``pred_label``/``true_label`` columns when present, else derives them from
    ``prediction``/``reference``. A prediction without a label is a miss for its true class
    (a false negative) and no class's false positive.
    """
    predicted, truth = _frame_labels(frame, labels, synonyms)
    classes = sorted({c for c in [*predicted, *truth] if isinstance(c, str)})
    if not classes:
        return 0.0
    pred = np.asarray(predicted, dtype=object)
    true = np.asarray(truth, dtype=object)
    scores = []
    for cls in classes:
        is_pred, is_true = pred == cls, true == cls
        tp = int(np.sum(is_pred & is_true))
        fp = int(np.sum(is_pred & ~is_true))
        fn = int(np.sum(~is_pred & is_true))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))
