"""``mws_vqa``: MWS-Vision-Bench's reasoning-VQA score (``reasoning VQA ru``).

The references are the official ``answers`` list — every accepted format of the answer
(``meta.mws.answers``, see :mod:`.reply`). Reply and answers are lowercased, stripped and their
newlines made spaces. An answer of fewer than five words scores 1 when it occurs anywhere in
the reply (a substring test); a longer answer scores its normalised Levenshtein similarity
1 − distance / longer length when that is at least 0.5. The item's score is the best answer's.

Quirks followed (docs/mws_vision.md, "Where we follow the official code's quirks"):

- a short answer is a substring test, not a word match: ``"5"`` is found in ``"15 000"``, and a
  reply that lists several candidates gets 1 if any of them is right;
- a short answer that is not found scores 0, however close the reply (no fuzzy fallback);
- an answer that is empty after normalisation is found in every reply (even an empty one);
- a number in the answers counts as its ``str`` (``true`` as ``"true"``); an answer that is
  neither text nor a number (``null``) is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rapidfuzz.distance import Levenshtein

from vlmhyperbench.metrics.mws.reply import official_answers, official_reply

SHORT_ANSWER_WORDS = 5
MIN_SIMILARITY = 0.5


def _normalise(text: str) -> str:
    return text.lower().strip().replace("\n", " ")


def answer_score(reply: str, answer: str) -> float:
    """One accepted answer against a normalised reply."""
    answer = _normalise(answer)
    if len(answer.split()) < SHORT_ANSWER_WORDS:
        return 1.0 if answer in reply else 0.0
    longer = max(len(reply), len(answer))
    similarity = 1 - (Levenshtein.distance(reply, answer) / longer if longer else 0.0)
    return similarity if similarity >= MIN_SIMILARITY else 0.0


def mws_vqa(
    prediction: str,
    references: Sequence[Any],
    *,
    sample: Mapping[str, Any] | None = None,
    strip_reply: bool = True,
) -> float:
    """The official per-item VQA score: the best accepted answer's (0…1)."""
    answers = official_answers(references, sample)
    reply = official_reply(prediction, sample, strip_reply=strip_reply)
    if reply is None:
        return 0.0
    reply = _normalise(reply)
    best = 0.0
    for answer in answers:
        if isinstance(answer, int | float):  # bool too: True counts as "True"
            answer = str(answer)
        if isinstance(answer, str):
            best = max(best, answer_score(reply, answer))
    return best
