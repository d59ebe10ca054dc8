"""Turn a judge model's reply into a verdict (pure: no I/O).

Where the verdict is read
-------------------------
* By default: from the **last JSON object in the reply that has a ``"verdict"`` key** (the key
  spelled exactly so). The reply may wrap it in prose or a fenced code block. Each ``{`` is
  tried as the start of a JSON object (``json.JSONDecoder.raw_decode``); once an object parses,
  scanning resumes after it, so braces inside its strings are never mistaken for objects. Objects
  nested in it count too. "Last" means the object whose closing brace comes last: an object's
  own ``verdict`` beats those of objects nested in it, and a later object beats an earlier one.
  Only the last such object is read: if its value is unusable the verdict is invalid, even when
  an earlier object held a usable one.
* Only real JSON is accepted: single-quoted pseudo-JSON (``{'verdict': 'yes'}``) is **not** read,
  and nothing is ever evaluated as Python; use ``parse: {regex: …}`` for such judges.
* ``regex`` (``parse: {regex: …}``) replaces the JSON search: the text of the **last** match's
  first group (the whole match if the pattern has no group) is the verdict, read by the same
  rules below. The pattern is used as given (add ``(?i)`` for a case-insensitive match); one
  that does not compile raises ``ValueError``.

How the verdict's value is read
-------------------------------
Text is compared case-insensitively, after whitespace and punctuation around it (quotes,
brackets, ``*`` and the like, dots) are stripped; before a score, a sign or a decimal point is
kept (``"-1"``, ``".5"``).

* ``binary``: ``correct``/``yes``/``true``/``right``/``1`` → 1.0, label ``"correct"``;
  ``incorrect``/``no``/``false``/``wrong``/``0`` → 0.0, label ``"incorrect"``. JSON ``true``,
  ``false``, ``1`` and ``0`` too.
* ``score``: a number, JSON or text (``4``, ``"4.5"``; a decimal comma ``"4,5"`` is read as
  ``4.5``; an exponent is allowed; ``nan``, ``inf``, ``4/5`` are not numbers), within
  ``[score_min, score_max]`` inclusive. The value is the number as given, not rescaled; the label
  is its text (``"4"``, ``"4.5"``).
* ``pairwise``: ``A``/``1`` → 1.0 (answer A is better), ``B``/``2`` → 0.0 (answer B is better),
  ``tie``/``equal``/``draw`` → 0.5; labels ``"A"``, ``"B"``, ``"tie"``. JSON ``1`` and ``2``
  too.

Anything else (an empty reply, no JSON object with a ``verdict`` key, no regex match, a value
out of range or not in the lists above) is an ``invalid`` verdict: ``value`` is ``None`` and
``detail`` says why. Invalid verdicts are excluded from a metric's mean and counted, never
scored as 0.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["binary", "score", "pairwise"]
KINDS: tuple[str, ...] = ("binary", "score", "pairwise")
DETAIL_LIMIT = 120

_BINARY = {
    **dict.fromkeys(("correct", "yes", "true", "right", "1"), (1.0, "correct")),
    **dict.fromkeys(("incorrect", "no", "false", "wrong", "0"), (0.0, "incorrect")),
}
_PAIRWISE = {
    **dict.fromkeys(("a", "1"), (1.0, "A")),
    **dict.fromkeys(("b", "2"), (0.0, "B")),
    **dict.fromkeys(("tie", "equal", "draw"), (0.5, "tie")),
}
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Stripped around a verdict's text besides Unicode punctuation (category P*) and whitespace.
_EXTRA_STRIP = "`~"
# Before a score, a sign or a decimal point or comma belongs to the number (".5", "-1").
_NUMBER_LEADING = "+-.,"
# Where a JSON object can start: a brace, then a key's quote or the closing brace.
_OBJECT_START = re.compile(r"\{\s*[\"}]")
# Returned by the readers, with the reason, when the reply holds no verdict.
_MISSING = object()


@dataclass(frozen=True)
class Verdict:
    """One graded reply: ``value`` is ``None`` exactly when ``status`` is ``"invalid"``."""

    status: Literal["ok", "invalid"]
    value: float | None
    label: str | None
    detail: str

    def __post_init__(self) -> None:
        if (self.status == "ok") != (self.value is not None):
            raise ValueError(f"verdict status {self.status!r} with value {self.value!r}")


def check_regex(regex: str) -> str | None:
    """The problem with a verdict regex (it does not compile), or ``None`` when it is usable."""
    try:
        re.compile(regex)
    except (re.error, TypeError, OverflowError, RecursionError) as exc:
        return f"verdict regex '{regex}' does not compile: {exc}"
    return None


def parse_verdict(
    reply: str,
    kind: Kind,
    *,
    score_min: float = 1,
    score_max: float = 5,
    regex: str | None = None,
) -> Verdict:
    """Read a judge's ``reply`` as a ``kind`` verdict (rules: the module docstring).

    Raises ``ValueError`` for a caller's mistake (unknown kind, empty score range, a regex that
    does not compile); a reply never makes it raise.
    """
    _check_arguments(kind, score_min, score_max, regex)
    if not reply or not reply.strip():
        return _invalid("empty reply")
    if regex is not None:
        found, where = _read_regex(reply, regex)
    else:
        found, where = _read_json(reply)
    if found is _MISSING:
        return _invalid(where)
    if kind == "binary":
        return _interpret_choice(found, _BINARY, "binary", where)
    if kind == "pairwise":
        return _interpret_choice(found, _PAIRWISE, "pairwise", where)
    return _interpret_score(found, score_min, score_max, where)


def _check_arguments(kind: str, score_min: float, score_max: float, regex: str | None) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown verdict kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "score" and not (
        math.isfinite(score_min) and math.isfinite(score_max) and score_min <= score_max
    ):
        raise ValueError(f"score range [{score_min}, {score_max}] is empty or not finite")
    if regex is not None and (problem := check_regex(regex)) is not None:
        raise ValueError(problem)


def _read_json(reply: str) -> tuple[Any, str]:
    """The last JSON ``verdict`` value and ``"JSON"``, or ``_MISSING`` and why it is missing."""
    last = None
    for obj in _json_objects(reply):
        if "verdict" in obj:
            last = obj
    if last is None:
        why = "no JSON object with a 'verdict' key"
        if re.search(r"'verdict'\s*:", reply):
            why += " (single-quoted pseudo-JSON is not read; use parse.regex)"
        return _MISSING, why
    return last["verdict"], "JSON"


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``text``, nested ones included, in the order their braces close."""
    decoder = json.JSONDecoder()
    start = _OBJECT_START.search(text)
    while start is not None:
        try:
            value, end = decoder.raw_decode(text, start.start())
        except (ValueError, RecursionError):
            start = _OBJECT_START.search(text, start.start() + 1)
            continue
        yield from _dicts_inner_first(value)
        start = _OBJECT_START.search(text, end)


def _dicts_inner_first(value: Any) -> Iterator[dict[str, Any]]:
    """The dicts in a decoded JSON value, each after those nested in it (closing-brace order)."""
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            yield node
        elif isinstance(node, dict):
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend((child, False) for child in reversed(node))


def _read_regex(reply: str, regex: str) -> tuple[Any, str]:
    """The last match's first group (or whole match) and ``"regex"``, or ``_MISSING`` and why."""
    matches = list(re.finditer(regex, reply))
    if not matches:
        return _MISSING, f"regex '{regex}' did not match the reply"
    last = matches[-1]
    text = last.group(1) if last.re.groups else last.group(0)
    if text is None:
        return _MISSING, f"regex '{regex}' matched but its first group did not take part"
    return text, "regex"


def _interpret_choice(
    found: Any, table: dict[str, tuple[float, str]], kind: str, where: str
) -> Verdict:
    """A binary or pairwise verdict: ``found`` looked up in ``table`` by its normalised text."""
    text = _choice_text(found, kind)
    if text is not None and (hit := table.get(_strip(text).casefold())) is not None:
        value, label = hit
        return Verdict("ok", value, label, _clip(f"{where} verdict {_show(found)} → {label}"))
    allowed = "correct/incorrect, yes/no, true/false, right/wrong, 1/0"
    if kind == "pairwise":
        allowed = "A/B/tie (also 1/2, equal, draw)"
    return _invalid(f"{where} {kind} verdict {_show(found)} is not one of {allowed}")


def _choice_text(found: Any, kind: str) -> str | None:
    """The text a JSON or regex value stands for, or ``None`` if it can be no choice."""
    if isinstance(found, str):
        return found
    if isinstance(found, bool):
        return str(found).lower() if kind == "binary" else None
    if isinstance(found, int):
        return str(found)
    if isinstance(found, float) and math.isfinite(found) and found.is_integer():
        return str(int(found))
    return None


def _interpret_score(found: Any, low: float, high: float, where: str) -> Verdict:
    """A score verdict: a finite number within ``[low, high]``."""
    number = _score_number(found)
    if number is None:
        return _invalid(f"{where} score verdict {_show(found)} is not a number")
    if not math.isfinite(number):
        return _invalid(f"{where} score verdict {_show(found)} is not finite")
    label = _number_text(number)
    if not low <= number <= high:
        return _invalid(
            f"{where} score verdict {label} is outside [{_number_text(low)}, {_number_text(high)}]"
        )
    return Verdict("ok", number, label, _clip(f"{where} verdict {_show(found)} → {label}"))


def _score_number(found: Any) -> float | None:
    """A JSON number, or text that is a plain decimal number (comma or dot), as a float."""
    if isinstance(found, bool):
        return None
    if isinstance(found, int | float):
        try:
            return float(found)
        except OverflowError:  # a JSON integer too large for a float
            return math.inf
    if not isinstance(found, str):
        return None
    text = _strip(found, keep_leading=_NUMBER_LEADING).replace(",", ".", 1)
    if not _NUMBER.fullmatch(text):
        return None
    return float(text)  # may be inf for a huge exponent; the caller rejects it


def _number_text(number: float) -> str:
    """``4.0`` → ``"4"``, ``4.5`` → ``"4.5"``."""
    number = float(number)
    if math.isfinite(number) and number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return repr(number)


def _is_strippable(char: str) -> bool:
    return char.isspace() or char in _EXTRA_STRIP or unicodedata.category(char).startswith("P")


def _strip(text: str, keep_leading: str = "") -> str:
    """``text`` without whitespace and punctuation at either end (``keep_leading`` kept first)."""
    start, end = 0, len(text)
    while start < end and text[start] not in keep_leading and _is_strippable(text[start]):
        start += 1
    while end > start and _is_strippable(text[end - 1]):
        end -= 1
    return text[start:end]


def _show(found: Any) -> str:
    """A found value as it reads in JSON (strings quoted), clipped."""
    try:
        shown = json.dumps(found, ensure_ascii=False)
    except (ValueError, RecursionError):  # a value nested near the decoder's depth limit
        shown = f"a deeply nested {type(found).__name__}"
    return _clip(shown, 30)


def _clip(text: str, limit: int = DETAIL_LIMIT) -> str:
    """One line of at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _invalid(detail: str) -> Verdict:
    return Verdict("invalid", None, None, _clip(detail))
