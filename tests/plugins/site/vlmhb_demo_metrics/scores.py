"""Two metrics sharing one helper, so tests can edit one metric or the shared helper."""

from __future__ import annotations

from collections.abc import Sequence


def _letters(text: str) -> str:
    """Shared by both metrics: lower-cased letters and digits only."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def char_overlap(prediction: str, references: Sequence[str]) -> float:
    """Share of the reference's distinct characters that the prediction contains (best ref)."""
    predicted = set(_letters(prediction))
    best = 0.0
    for reference in references:
        expected = set(_letters(reference))
        score = len(predicted & expected) / len(expected) if expected else float(not predicted)
        best = max(best, score)
    return best


def length_ratio(prediction: str, references: Sequence[str], *, cap: float = 2.0) -> float:
    """len(prediction) / len(reference) of the letters, capped at ``cap`` (first reference)."""
    expected = len(_letters(references[0]))
    if expected == 0:
        return 0.0
    return min(cap, len(_letters(prediction)) / expected)
