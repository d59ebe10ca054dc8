"""Per-sample text metrics: exact match, ANLS, CER, WER and token F1.

Each is ``score(prediction, references, **params) -> float``; with several references the
best-scoring one counts. Each has a vectorised ``batch`` twin returning the same values; CER and
WER also store the edits and the reference length of the chosen reference, from which
:func:`corpus_error_rate` computes the corpus-level rate (Σ edits / Σ reference length).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein

from vlmhyperbench.metrics.aggregate import sums_aggregate
from vlmhyperbench.metrics.base import batched, require_references, with_row_columns
from vlmhyperbench.metrics.fast import (
    best_per_sample,
    flatten_references,
    lengths,
    levenshtein_pairs,
    matches_any,
    normalize_many,
)
from vlmhyperbench.metrics.normalize import normalize_text

# --- exact match -----------------------------------------------------------------------------


def _match_options(
    case_sensitive: bool,
    strip_punctuation: bool,
    normalize_yo: bool,
    nfkc: bool,
    collapse_spaces: bool,
) -> dict[str, Any]:
    return {
        "case": None if case_sensitive else "casefold",
        "strip_punctuation": strip_punctuation,
        "normalize_yo": normalize_yo,
        "nfkc": nfkc,
        "collapse_spaces": collapse_spaces,
    }


def exact_match_batch(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    case_sensitive: bool = False,
    strip_punctuation: bool = True,
    normalize_yo: bool = True,
    nfkc: bool = True,
    collapse_spaces: bool = True,
) -> np.ndarray:
    options = _match_options(case_sensitive, strip_punctuation, normalize_yo, nfkc, collapse_spaces)
    return matches_any(predictions, references, **options).astype(np.float64)


@batched(exact_match_batch)
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
    options = _match_options(case_sensitive, strip_punctuation, normalize_yo, nfkc, collapse_spaces)
    predicted = normalize_text(prediction, **options)
    hit = any(predicted == normalize_text(ref, **options) for ref in require_references(references))
    return 1.0 if hit else 0.0


# --- ANLS ------------------------------------------------------------------------------------


def _anls_form(text: str) -> str:
    # The RRC DocVQA script: strip, lower, collapse whitespace — nothing else.
    return " ".join(text.strip().lower().split())


def _anls_from_nl(best_nl: float, threshold: float) -> float:
    score = 1.0 - best_nl
    return 0.0 if score < threshold else max(0.0, score)


def anls_batch(
    predictions: Sequence[str], references: Sequence[Sequence[str]], *, threshold: float = 0.5
) -> np.ndarray:
    flat, owner = flatten_references(references)
    predicted = normalize_many(predictions, case="lower", nfkc=False)
    expected = normalize_many(flat, case="lower", nfkc=False)
    pred_for_ref = (
        predicted if len(flat) == len(predicted) else [predicted[o] for o in owner.tolist()]
    )
    distance = levenshtein_pairs(pred_for_ref, expected).astype(np.float64)
    pred_upper = np.fromiter((len(p.upper()) for p in predictions), np.int64, len(predictions))
    ref_upper = np.fromiter((len(r.upper()) for r in flat), np.int64, len(flat))
    length = np.maximum(pred_upper[owner], ref_upper).astype(np.float64)
    nl = np.divide(distance, length, out=np.zeros_like(distance), where=length > 0)
    if len(expected) == len(predicted):  # one reference per sample
        best = nl
    else:
        best = np.full(len(predicted), np.inf)
        np.minimum.at(best, owner, nl)
    score = 1.0 - best
    return np.where(score < threshold, 0.0, np.maximum(score, 0.0))


@batched(anls_batch)
def anls(prediction: str, references: Sequence[str], *, threshold: float = 0.5) -> float:
    """Average Normalised Levenshtein Similarity for one sample (RRC DocVQA semantics).

    Both strings are stripped, lowercased and whitespace-collapsed; NL = Levenshtein distance /
    max(len(reference.upper()), len(prediction.upper())) of the *raw* strings (as the official
    script); score = 1 − min NL over references, zeroed only when strictly below ``threshold``,
    so NL == 0.5 exactly still scores 0.5.
    """
    predicted = _anls_form(prediction)
    values = []
    for ref in require_references(references):
        length = max(len(ref.upper()), len(prediction.upper()))
        distance = Levenshtein.distance(predicted, _anls_form(ref))
        values.append(0.0 if length == 0 else distance / length)
    return _anls_from_nl(min(values), threshold)


# --- CER / WER -------------------------------------------------------------------------------


def _error_form(text: str, lowercase: bool, nfkc: bool, collapse_spaces: bool) -> str:
    text = normalize_text(
        text, case="casefold" if lowercase else None, nfkc=nfkc, collapse_spaces=collapse_spaces
    )
    return text if collapse_spaces else text.strip()


def _words(text: str) -> list[str]:
    return text.split(" ") if text else []


def _rate(edits: int, ref_len: int, hyp_len: int) -> float:
    if ref_len == 0:
        # Undefined in jiwer: perfect only if the hypothesis is empty too.
        return 0.0 if hyp_len == 0 else 1.0
    return edits / ref_len


def _error_rows(
    measure: str,
    prediction: str,
    references: Sequence[str],
    lowercase: bool,
    nfkc: bool,
    collapse_spaces: bool,
) -> tuple[float, int, int]:
    """(best rate, its edits, its reference length) over the references."""
    hyp = _error_form(prediction, lowercase, nfkc, collapse_spaces)
    hyp_units: Any = hyp if measure == "cer" else _words(hyp)
    best: tuple[float, int, int] | None = None
    for ref in require_references(references):
        ref_text = _error_form(ref, lowercase, nfkc, collapse_spaces)
        ref_units: Any = ref_text if measure == "cer" else _words(ref_text)
        edits = Levenshtein.distance(hyp_units, ref_units)
        rate = _rate(edits, len(ref_units), len(hyp_units))
        if best is None or rate < best[0]:
            best = (rate, edits, len(ref_units))
    assert best is not None
    return best


def _error_batch(
    measure: str,
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    clip: bool,
    lowercase: bool,
    nfkc: bool,
    collapse_spaces: bool,
) -> dict[str, np.ndarray]:
    options = {"case": "casefold" if lowercase else None, "nfkc": nfkc}
    flat, owner = flatten_references(references)
    hyp = normalize_many(predictions, collapse_spaces=collapse_spaces, **options)
    ref = normalize_many(flat, collapse_spaces=collapse_spaces, **options)
    if not collapse_spaces:
        hyp, ref = [h.strip() for h in hyp], [r.strip() for r in ref]
    hyp_for_ref = hyp if len(flat) == len(hyp) else [hyp[o] for o in owner.tolist()]
    if measure == "wer":
        hyp_for_ref, ref = [_words(h) for h in hyp_for_ref], [_words(r) for r in ref]
    edits = levenshtein_pairs(hyp_for_ref, ref)
    ref_len, hyp_len = lengths(ref), lengths(hyp_for_ref)
    rate = np.divide(edits, ref_len, out=np.zeros(len(ref)), where=ref_len > 0)
    rate = np.where(ref_len == 0, (hyp_len > 0).astype(np.float64), rate)
    best = best_per_sample(rate, owner, len(hyp), lowest=True)
    value = np.minimum(rate[best], 1.0) if clip else rate[best]
    return {"value": value, "edits": edits[best], "ref_len": ref_len[best]}


def _error_columns(measure: str):
    def columns(
        prediction: str,
        references: Sequence[str],
        *,
        clip: bool = True,
        lowercase: bool = False,
        nfkc: bool = True,
        collapse_spaces: bool = True,
    ) -> dict[str, Any]:
        _, edits, ref_len = _error_rows(
            measure, prediction, references, lowercase, nfkc, collapse_spaces
        )
        return {"edits": edits, "ref_len": ref_len}

    return columns


def cer_batch(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    clip: bool = True,
    lowercase: bool = False,
    nfkc: bool = True,
    collapse_spaces: bool = True,
) -> dict[str, np.ndarray]:
    options = {"clip": clip, "lowercase": lowercase, "nfkc": nfkc}
    return _error_batch("cer", predictions, references, collapse_spaces=collapse_spaces, **options)


def wer_batch(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    clip: bool = True,
    lowercase: bool = False,
    nfkc: bool = True,
    collapse_spaces: bool = True,
) -> dict[str, np.ndarray]:
    options = {"clip": clip, "lowercase": lowercase, "nfkc": nfkc}
    return _error_batch("wer", predictions, references, collapse_spaces=collapse_spaces, **options)


@batched(cer_batch)
@with_row_columns(_error_columns("cer"))
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
    scores 1.0; an empty reference scores 0 with an empty prediction, else 1. With ``clip`` the
    rate is capped at 1 (insertions can exceed it).
    """
    rate, _, _ = _error_rows("cer", prediction, references, lowercase, nfkc, collapse_spaces)
    return min(1.0, rate) if clip else rate


@batched(wer_batch)
@with_row_columns(_error_columns("wer"))
def wer(
    prediction: str,
    references: Sequence[str],
    *,
    clip: bool = True,
    lowercase: bool = False,
    nfkc: bool = True,
    collapse_spaces: bool = True,
) -> float:
    """Word error rate against the closest reference; same conventions as :func:`cer`, words
    being the space-separated tokens after whitespace collapsing."""
    rate, _, _ = _error_rows("wer", prediction, references, lowercase, nfkc, collapse_spaces)
    return min(1.0, rate) if clip else rate


def _error_stats(frame: pd.DataFrame) -> np.ndarray:
    return frame[["edits", "ref_len"]].to_numpy(dtype=np.float64)


def _error_from_sums(sums: np.ndarray) -> np.ndarray:
    edits, ref_len = sums[..., 0], sums[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ref_len > 0, edits / np.where(ref_len > 0, ref_len, 1), np.nan)


@sums_aggregate(_error_stats, _error_from_sums)
def corpus_error_rate(frame: pd.DataFrame) -> float:
    """Corpus-level CER/WER: Σ edits / Σ reference length over the group's rows (no clipping)."""
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
