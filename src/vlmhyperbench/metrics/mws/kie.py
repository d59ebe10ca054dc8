"""``mws_kie``: MWS-Vision-Bench's key-information-extraction score
(``key information extraction ru``).

The reference is the one official answer (``meta.mws.answers[0]``, see :mod:`.reply`): a JSON
object as text (or an object). A field whose value is a list lists its accepted values; every
combination of one accepted value per field is a reference dict. The reply is parsed into a
``{key: text}`` dict (:func:`reply_fields`). Per reference dict, each key of either side scores
1 when both have it and the normalised texts are equal (lowercased, stripped, newlines and
then *every ASCII space* removed), else 0; the item's score is the best mean over the
reference dicts.

Quirks followed (docs/mws_vision.md, "Where we follow the official code's quirks"):

- the reply: the first Markdown fence (```` ``` ````, ```` ```json ````, ```` ```python ````,
  any case, a newline after the tag and before the closing fence) is read, else the whole
  stripped reply; as JSON, else as a Python literal, else by a ``key: value`` / ``key = value``
  regex over the text; anything but a dict with string keys is ``{}``; values become
  ``str(value).strip()`` — so JSON ``null`` is ``"None"``, ``1.0`` stays ``"1.0"`` and a nested
  object its Python ``repr``;
- extra keys in the reply lower the score (they count as wrong fields); a reference field that
  is ``null`` counts only where the reply has the key (then it is wrong);
- a reference field whose value is a non-empty non-string (a number, ``true``) makes that
  reference dict unusable (the official code fails on it and skips it); an empty reference
  string matches an empty reply value;
- the reference text: surrounding ``"`` characters are stripped before parsing; text that is
  neither JSON nor a Python literal dict scores 0 for every reply; a reference *object*'s
  values are iterated as they are — a string value is a list of its characters;
- tabs and non-breaking spaces are *not* removed when comparing values.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from vlmhyperbench.metrics.mws.reply import official_answers, official_reply, single_answer

_FENCE = re.compile(r"```(?:python|json)?\n(.*?)\n```", re.DOTALL | re.IGNORECASE)
_QUOTE = "[\"']?"
_KEY_VALUE = re.compile(
    _QUOTE + r"([\w\s]+)" + _QUOTE + r"\s*[:=]\s*" + _QUOTE + r"([^\n,\"'{}]+)" + _QUOTE
)


class _Unusable(Exception):
    """A reference (or reference dict) the official code fails on: it scores nothing."""


_NOT_A_LITERAL = object()


def _parse_payload(content: str) -> Any:
    """JSON, else a Python literal dict, else the key-value regex (the official order); a
    literal that is not a dict gives None (the official regex step then fails on it)."""
    try:
        return json.loads(content)
    except json.JSONDecodeError:
        pass
    try:
        value = ast.literal_eval(content)
    except (ValueError, SyntaxError):
        value = _NOT_A_LITERAL
    if isinstance(value, dict):
        return value
    if value is not _NOT_A_LITERAL:
        return None
    return {key.strip(): text.strip() for key, text in _KEY_VALUE.findall(content)}


def reply_fields(reply: str) -> dict[str, str]:
    """The reply as the official code reads it: ``{key: text}``, ``{}`` when unreadable."""
    fenced = _FENCE.search(reply)
    try:
        payload = _parse_payload(fenced.group(1) if fenced else reply.strip())
    except (TypeError, MemoryError, RecursionError):
        return {}
    if not isinstance(payload, dict) or not payload:
        return {}
    if not all(isinstance(key, str) for key in payload):
        return {}
    return {key.strip(): str(value).strip() for key, value in payload.items()}


def _reference_object(reference: Any) -> dict[str, Any]:
    if isinstance(reference, dict):
        return reference
    text = str(reference).strip('"')
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        try:
            parsed = ast.literal_eval(text)
            if not isinstance(parsed, dict):
                parsed = ast.literal_eval(parsed)
        except (ValueError, SyntaxError) as exc:
            raise _Unusable from exc  # the official code has no reference: every reply scores 0
        except (TypeError, MemoryError, RecursionError) as exc:
            raise _Unusable from exc
    except RecursionError as exc:
        raise _Unusable from exc
    if not isinstance(parsed, dict):
        raise _Unusable
    return parsed


def reference_dicts(reference: Any) -> Iterator[dict[str, Any]]:
    """Every combination of one accepted value per field (lazily; ``[]`` when unparseable)."""
    payload = _reference_object(reference)
    keys = list(payload)
    if isinstance(reference, dict):
        choices = [payload[key] for key in keys]  # iterated as they are: "ab" -> "a", "b"
    else:
        choices = [v if isinstance(v, list) else [v] for v in payload.values()]
    try:
        combos = itertools.product(*choices)
    except TypeError as exc:  # a field value that cannot be iterated
        raise _Unusable from exc
    for values in combos:
        yield dict(zip(keys, values, strict=True))


def _normalise(value: Any) -> Any:
    if not value:
        return value
    if not isinstance(value, str):
        raise _Unusable  # the official code calls .lower() on it and skips this reference
    return value.lower().strip().replace("\n", " ").replace(" ", "")


def field_score(fields: Mapping[str, str], reference: Mapping[str, Any]) -> float:
    """Mean over the keys of both sides of 1 (equal normalised values) or 0."""
    scores = []
    for key in set(fields) | set(reference):
        mine, theirs = fields.get(key), reference.get(key)
        mine, theirs = (None if mine is None else _normalise(mine)), _normalise(theirs)
        if mine is None and theirs is None:
            continue
        scores.append(1.0 if mine is not None and theirs is not None and mine == theirs else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def mws_kie(
    prediction: str,
    references: Sequence[Any],
    *,
    sample: Mapping[str, Any] | None = None,
    strip_reply: bool = True,
) -> float:
    """The official per-item KIE score: the best field-match mean over the reference dicts."""
    reference = single_answer(official_answers(references, sample), "key information extraction")
    reply = official_reply(prediction, sample, strip_reply=strip_reply)
    if reply is None:
        return 0.0
    fields = reply_fields(reply)
    best = 0.0
    try:
        for candidate in reference_dicts(reference):
            try:
                best = max(best, field_score(fields, candidate))
            except _Unusable:
                continue
            if best == 1.0:
                break
    except _Unusable:
        return 0.0
    return best
