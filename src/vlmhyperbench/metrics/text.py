"""Per-sample text metrics: exact match, ANLS, CER, WER and token F1.

Each is ``score(prediction, references, **params) -> float``; with several references the
best-scoring one counts. Strings are prepared by :mod:`vlmhyperbench.metrics.normalize` (the only
place that normalises text); edit distances come from rapidfuzz. CER and WER also store the edits
and the reference length of the chosen reference (``row_columns``), from which
:func:`corpus_error_rate` computes the corpus-level rate (Σ edits / Σ reference length).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rapidfuzz.distance import Levenshtein

from vlmhyperbench.metrics.base import ColumnSums, metric, require_references
from vlmhyperbench.metrics.normalize import normalize_text, words

if TYPE_CHECKING:
    import pandas as pd  # annotations only: the rows arrive as a DataFrame

# --- exact match -----------------------------------------------------------------------------


def exact_match(
    prediction: str,
    references: Sequence[str],
    *,
    case_sensitive: bool = False,
    strip_punctuation: bool = True,
    normalize_yo: bool = True,
    nfkc: bool = True,
    collapse_spaces: bool = True,
) -> float:
    """1.0 when the normalised prediction equals any normalised reference, else 0.0.

    Normalisation (each step a parameter): NFKC, Unicode case folding (Cyrillic included),
    ``ё``→``е``, punctuation (Unicode category P*) → space, whitespace runs → one space + strip.
    """
    options: dict[str, Any] = {
        "case": None if case_sensitive else "casefold",
        "strip_punctuation": strip_punctuation,
        "normalize_yo": normalize_yo,
        "nfkc": nfkc,
        "collapse_spaces": collapse_spaces,
    }
    predicted = normalize_text(prediction, **options)
    hit = any(predicted == normalize_text(ref, **options) for ref in require_references(references))
    return 1.0 if hit else 0.0


# --- ANLS ------------------------------------------------------------------------------------


def anls(prediction: str, references: Sequence[str], *, threshold: float = 0.5) -> float:
    """Average Normalised Levenshtein Similarity for one sample (RRC DocVQA semantics).

    Both strings are stripped, lowercased and whitespace-collapsed (the script's
    ``" ".join(s.strip().lower().split())``); NL = Levenshtein distance /
    max(len(reference.upper()), len(prediction.upper())) of the *raw* strings (as the official
    script); score = 1 − min NL over references, zeroed only when strictly below ``threshold``,
    so NL == 0.5 exactly still scores 0.5.
    """
    predicted = normalize_text(prediction, case="lower", nfkc=False)
    best = 1.0
    for ref in require_references(references):
        length = max(len(ref.upper()), len(prediction.upper()))
        distance = Levenshtein.distance(predicted, normalize_text(ref, case="lower", nfkc=False))
        best = min(best, 0.0 if length == 0 else distance / length)
    score = 1.0 - best
    return 0.0 if score < threshold else max(0.0, score)


# --- CER / WER -------------------------------------------------------------------------------


def _units(measure: str, text: str, lowercase: bool, nfkc: bool, collapse_spaces: bool) -> Any:
    """The characters (``cer``) or words (``wer``) the error rate counts.

    ``collapse_spaces`` off leaves the text as jiwer 4's default transforms do: CER strips the
    ends only, WER splits words as :func:`~vlmhyperbench.metrics.normalize.words`.
    """
    case = "casefold" if lowercase else None
    text = normalize_text(text, case=case, nfkc=nfkc, collapse_spaces=collapse_spaces)
    return text.strip() if measure == "cer" else words(text)


def _error_rows(
    measure: str,
    prediction: str,
    references: Sequence[str],
    lowercase: bool,
    nfkc: bool,
    collapse_spaces: bool,
) -> tuple[float, int, int]:
    """(best rate, its edits, its reference length) over the references.

    rate = edits / max(reference length, 1), as jiwer 4: an empty reference scores the number
    of predicted units (0 when the prediction is empty too).
    """
    hyp = _units(measure, prediction, lowercase, nfkc, collapse_spaces)
    best: tuple[float, int, int] | None = None
    for ref in require_references(references):
        expected = _units(measure, ref, lowercase, nfkc, collapse_spaces)
        edits = Levenshtein.distance(hyp, expected)
        rate = edits / max(len(expected), 1)
        if best is None or rate < best[0]:
            best = (rate, edits, len(expected))
    assert best is not None
    return best


def _error_columns(measure: str):
    def columns(
        prediction: str,
        references: Sequence[str],
        *,
        lowercase: bool = False,
        nfkc: bool = True,
        collapse_spaces: bool = True,
    ) -> dict[str, Any]:
        _, edits, ref_len = _error_rows(
            measure, prediction, references, lowercase, nfkc, collapse_spaces
        )
        return {"edits": edits, "ref_len": ref_len}

    return columns


@metric(row_columns=_error_columns("cer"))
def cer(
    prediction: str,
    references: Sequence[str],
    *,
    clip: bool = True,
    lowercase: bool = False,
    nfkc: bool = True,
    collapse_spaces: bool = True,
) -> float:
    """Character error rate against the closest reference; lower is better.

    (S + D + I) / reference length on NFKC text with whitespace collapsed (``collapse_spaces``;
    off: only stripped, as jiwer's default). An empty prediction against a non-empty reference
    scores 1.0. With ``clip`` the rate is capped at 1 (insertions can exceed it).
    """
    rate, _, _ = _error_rows("cer", prediction, references, lowercase, nfkc, collapse_spaces)
    return min(1.0, rate) if clip else rate


@metric(row_columns=_error_columns("wer"))
def wer(
    prediction: str,
    references: Sequence[str],
    *,
    clip: bool = True,
    lowercase: bool = False,
    nfkc: bool = True,
    collapse_spaces: bool = True,
) -> float:
    """Word error rate against the closest reference; same conventions as :func:`cer`. With
    ``clip: false, nfkc: false, collapse_spaces: false`` it is jiwer 4's ``wer(reference,
    prediction)``."""
    rate, _, _ = _error_rows("wer", prediction, references, lowercase, nfkc, collapse_spaces)
    return min(1.0, rate) if clip else rate


def _error_stats(frame: pd.DataFrame) -> np.ndarray:
    return frame[["edits", "ref_len"]].to_numpy(dtype=np.float64)


def _error_from_sums(sums: np.ndarray) -> np.ndarray:
    return sums[..., 0] / np.maximum(sums[..., 1], 1.0)


@metric(corpus=ColumnSums(row_stats=_error_stats, from_sums=_error_from_sums))
def corpus_error_rate(frame: pd.DataFrame) -> float:
    """Corpus-level CER/WER: Σ edits / max(Σ reference length, 1) over the group's rows (no
    clipping) — jiwer's ``wer(references, predictions)`` on the whole list."""
    return float(_error_from_sums(_error_stats(frame).sum(axis=0)))


# --- token F1 --------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _tokens(text: str, remove_articles: bool) -> list[str]:
    text = normalize_text(text, strip_punctuation=True, normalize_yo=True, collapse_spaces=False)
    if remove_articles:
        text = _ARTICLES.sub(" ", text)
    return text.split()


def _f1(predicted: list[str], expected: list[str]) -> float:
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: Sequence[str], *, remove_articles: bool = True) -> float:
    """SQuAD-style bag-of-tokens F1, best over references.

    Tokens: NFKC, case-folded, ``ё``→``е``, punctuation removed, English articles dropped
    (``remove_articles``), split on whitespace. Both empty → 1; one empty → 0.
    """
    predicted = _tokens(prediction, remove_articles)
    return max(
        _f1(predicted, _tokens(ref, remove_articles)) for ref in require_references(references)
    )
