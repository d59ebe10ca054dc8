"""Per-sample text metrics: exact match, ANLS, CER and WER.

Each is ``score(prediction, references, **params) -> float``; with several references the
best-scoring one counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import jiwer
from rapidfuzz.distance import Levenshtein

from vlmhyperbench.metrics.normalize import collapse_whitespace, normalize_text


def _require_references(references: Sequence[str]) -> Sequence[str]:
    if isinstance(references, str):
        raise TypeError("references must be a list of strings, not a single string")
    if not references:
        raise ValueError("at least one reference answer is required")
    return references


def exact_match(
    prediction: str,
    references: Sequence[str],
    *,
    case_sensitive: bool = False,
    strip_punctuation: bool = True,
    normalize_yo: bool = True,
    nfkc: bool = True,
) -> float:
    """1.0 when the normalised prediction equals any normalised reference, else 0.0."""
    options = {
        "lowercase": not case_sensitive,
        "strip_punctuation": strip_punctuation,
        "normalize_yo": normalize_yo,
        "nfkc": nfkc,
    }
    predicted = normalize_text(prediction, **options)
    hit = any(
        predicted == normalize_text(ref, **options) for ref in _require_references(references)
    )
    return 1.0 if hit else 0.0


def _anls_form(text: str) -> str:
    # The RRC DocVQA script: strip, lower, collapse whitespace — nothing else.
    return collapse_whitespace(text.lower())


def normalized_levenshtein(a: str, b: str) -> float:
    """Levenshtein distance divided by the longer length; 0.0 for two empty strings."""
    length = max(len(a), len(b))
    return 0.0 if length == 0 else Levenshtein.distance(a, b) / length


def anls(prediction: str, references: Sequence[str], *, threshold: float = 0.5) -> float:
    """Average Normalised Levenshtein Similarity for one sample (RRC DocVQA semantics).

    score = 1 − min NL over references, zeroed only when strictly below ``threshold``
    (the official script tests ``score < threshold``), so NL == 0.5 still scores 0.5.
    """
    predicted = _anls_form(prediction)
    best_nl = min(
        normalized_levenshtein(predicted, _anls_form(ref))
        for ref in _require_references(references)
    )
    score = 1.0 - best_nl
    return 0.0 if score < threshold else score


def _error_rate(
    measure: str,
    prediction: str,
    references: Sequence[str],
    *,
    clip: bool,
    lowercase: bool,
    nfkc: bool,
) -> float:
    options = {"lowercase": lowercase, "nfkc": nfkc}
    hypothesis = normalize_text(prediction, **options)
    rates = []
    for ref in _require_references(references):
        reference = normalize_text(ref, **options)
        if not reference:
            # jiwer's rate is undefined for an empty reference: perfect only if both are empty.
            rates.append(0.0 if not hypothesis else 1.0)
        elif not hypothesis:
            # Everything deleted; stated explicitly so an empty answer can never look perfect.
            rates.append(1.0)
        else:
            compute = jiwer.cer if measure == "cer" else jiwer.wer
            rates.append(float(compute(reference, hypothesis)))
    best = min(rates)
    return min(1.0, best) if clip else best


def cer(
    prediction: str,
    references: Sequence[str],
    *,
    clip: bool = True,
    lowercase: bool = False,
    nfkc: bool = True,
) -> float:
    """Character error rate (jiwer) against the closest reference; lower is better.

    Whitespace is collapsed before comparison. An empty prediction against a non-empty
    reference scores 1.0. With ``clip`` the rate is capped at 1 (insertions can exceed it).
    """
    return _error_rate("cer", prediction, references, clip=clip, lowercase=lowercase, nfkc=nfkc)


def wer(
    prediction: str,
    references: Sequence[str],
    *,
    clip: bool = True,
    lowercase: bool = False,
    nfkc: bool = True,
) -> float:
    """Word error rate (jiwer) against the closest reference; same conventions as :func:`cer`."""
    return _error_rate("wer", prediction, references, clip=clip, lowercase=lowercase, nfkc=nfkc)
