"""``mws_grounding``: MWS-Vision-Bench's text-grounding score (``text grounding ru``).

The reply is free text; the box is parsed from it here (no task kind parses coordinates): the
*last* group of four non-negative numbers in brackets or parentheses, ``[x1, y1, x2, y2]`` or
``(x1, y1, x2, y2)``, whose four numbers all lie in 0…2048. The score is the IoU of that box
with the reference box — the official ``answers`` list itself, four coordinates (strings, as
the dataset holds them; read from ``meta.mws.answers``, see :mod:`.reply`).

Quirks followed (docs/mws_vision.md, "Where we follow the official code's quirks"):

- no box, or a reference that is not four numbers, scores 0; a number is digits with at most
  one ``.`` inside or after them — ``-5``, ``.5`` or ``1e3`` end the match, so such a group is
  not a box at all (an earlier one may then count);
- a group with any number above 2048 is skipped, not clipped: a box partly outside a large
  page is ignored in favour of an earlier group; normalised 0…1 boxes are accepted as they
  are (and then barely overlap a pixel reference);
- boxes are not reordered: a box with x2 < x1 or y2 < y1 has no intersection and scores 0;
- a box of zero area against another gives 0 (a zero union is 0, not an error).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from vlmhyperbench.metrics.mws.reply import official_answers, official_reply

_NUMBER = r"(\d+\.?\d*)"
_SEP = r"\s*,\s*"
_BOX = re.compile(r"[(\[]\s*" + _SEP.join([_NUMBER] * 4) + r"\s*[)\]]")
COORDINATE_LIMIT = 2048.0


def parse_box(reply: str) -> list[float] | None:
    """The official box of a reply: the last bracketed quadruple within 0…2048, else None."""
    kept = None
    for match in _BOX.finditer(reply):
        box = [float(number) for number in match.groups()]
        if all(0 <= value <= COORDINATE_LIMIT for value in box):
            kept = box
    return kept


def _floats(values: Sequence[Any]) -> list[float] | None:
    try:
        return [float(value) for value in values]
    except (TypeError, ValueError):
        return None


def box_iou(box: Sequence[Any], reference: Sequence[Any]) -> float:
    """IoU as the official code computes it: corners as given, 0 for a zero union or
    coordinates that are not numbers."""
    a, b = _floats(box), _floats(reference)
    if a is None or b is None:
        return 0.0
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union != 0 else 0.0


def mws_grounding(
    prediction: str,
    references: Sequence[Any],
    *,
    sample: Mapping[str, Any] | None = None,
    strip_reply: bool = True,
) -> float:
    """The official per-item grounding score: IoU of the parsed box (0…1)."""
    reference = official_answers(references, sample)
    reply = official_reply(prediction, sample, strip_reply=strip_reply)
    if reply is None:
        return 0.0
    box = parse_box(reply)
    if box is None or len(reference) != 4:
        return 0.0
    return float(box_iou(box, reference))
