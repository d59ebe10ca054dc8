"""What the official MWS-Vision-Bench evaluation scores: the reply as its runner records it, and
the references as its dataset holds them. Shared by the five ``mws_*`` metrics.

The reply (:func:`official_reply`):

- a failed request scores 0 — the official runner records ``"ERROR in getting response"``
  and the evaluation gives that string 0 whatever the category, *before* looking at it (an
  empty reply is not a failure there: it is scored, and a Markdown reply "" gets more than 0);
- every official runner stores ``content.strip()``, so the reply is stripped first
  (``strip_reply: false`` scores the text as given, as ``eval_parallel.py`` alone does);
- a reply longer than 18,000 characters is cut to its first 18,000 plus ``" [TRUNCATED]"``
  before any category looks at it.

The references (:func:`official_answers`): the official ``answers`` list, exactly as the
dataset holds it. The MWS importer stores it as ``meta.mws.answers`` (the manifest's
``answers`` are readable copies, e.g. a grounding box as one string); without that key the
metric takes ``references`` as that list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FAILED_REPLY = "ERROR in getting response"
MAX_REPLY_CHARS = 18_000
TRUNCATION_MARK = " [TRUNCATED]"


def official_reply(
    prediction: str, sample: Mapping[str, Any] | None = None, *, strip_reply: bool = True
) -> str | None:
    """The text the official evaluation scores, or ``None`` where it scores 0 without looking
    (the request failed: our record has an ``error``, or the reply is the official marker)."""
    if sample is not None and sample.get("error") is not None:
        return None
    text = prediction.strip() if strip_reply else prediction
    if text == FAILED_REPLY:
        return None
    if len(text) > MAX_REPLY_CHARS:
        text = text[:MAX_REPLY_CHARS] + TRUNCATION_MARK
    return text


def official_answers(references: Sequence[Any], sample: Mapping[str, Any] | None) -> list[Any]:
    """The official ``answers`` list: ``sample.meta.mws.answers`` when present, else
    ``references``."""
    meta = (sample or {}).get("meta") or {}
    mws = meta.get("mws") if isinstance(meta, Mapping) else None
    if isinstance(mws, Mapping) and isinstance(mws.get("answers"), list):
        return list(mws["answers"])
    if isinstance(references, str):
        raise TypeError("references must be a list, not a single string")
    return list(references)


def single_answer(answers: Sequence[Any], category: str) -> Any:
    """The one reference of the OCR, Markdown and KIE categories (the official evaluation
    asserts there is exactly one)."""
    if len(answers) != 1:
        raise ValueError(
            f"an MWS {category} question has exactly one reference, got {len(answers)}"
        )
    return answers[0]
