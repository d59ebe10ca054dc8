"""Text normalisation: the one place where the text metrics prepare their strings.

Every option is a keyword so that a registry entry can switch it on or off through ``params``.
Editing a function here changes the score fingerprint (and so re-runs the score jobs) of every
metric that calls it, and of no other (``metrics/source.py``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

CaseMode = Literal["casefold", "lower"] | None

_WHITESPACE = re.compile(r"\s+")
# jiwer 4's RemoveMultipleSpaces: only runs of two or more whitespace characters become a space.
_JIWER_SPACES = re.compile(r"\s\s+")
# A decomposed "ё" (е + combining diaeresis) survives when NFKC is off; fold it as well.
_YO = str.maketrans({"ё": "е", "Ё": "Е"})
_DECOMPOSED_YO = re.compile("([еЕ])\u0308")


def fold_yo(text: str) -> str:
    """Map ``ё``/``Ё`` to ``е``/``Е``: Russian texts write them interchangeably."""
    if "\u0308" in text:
        text = _DECOMPOSED_YO.sub(r"\1", text)
    return text.translate(_YO)


class _PunctuationToSpace(dict):
    """A ``str.translate`` table filled on demand: each code point is classified once per
    process, then translate maps it in C (per-character ``unicodedata`` calls cost ~15× more)."""

    def __missing__(self, code_point: int) -> int | str:
        mapped = " " if unicodedata.category(chr(code_point)).startswith("P") else code_point
        self[code_point] = mapped
        return mapped


_PUNCTUATION_TO_SPACE = _PunctuationToSpace()


def remove_punctuation(text: str) -> str:
    """Replace every Unicode punctuation character (category ``P*``) with a space.

    A space rather than nothing keeps words apart ("Иванов,Иван" → "Иванов Иван"); callers
    collapse whitespace afterwards.
    """
    return text.translate(_PUNCTUATION_TO_SPACE)


def collapse_whitespace(text: str) -> str:
    """Strip the ends and turn every whitespace run into one space."""
    return _WHITESPACE.sub(" ", text).strip()


def normalize_text(
    text: str,
    *,
    case: CaseMode = "casefold",
    nfkc: bool = True,
    normalize_yo: bool = False,
    strip_punctuation: bool = False,
    collapse_spaces: bool = True,
) -> str:
    """Apply the selected normalisations in a fixed order.

    Order: NFKC (so compatibility forms and decomposed letters are unified first), case
    (``casefold``: Unicode case folding, Cyrillic included; ``lower``: ``str.lower``, as the
    RRC DocVQA script; ``None``: kept), ``ё``→``е``, punctuation, whitespace.
    """
    if nfkc:
        text = unicodedata.normalize("NFKC", text)
    if case == "casefold":
        text = text.casefold()
    elif case == "lower":
        text = text.lower()
    if normalize_yo:
        text = fold_yo(text)
    if strip_punctuation:
        text = remove_punctuation(text)
    if collapse_spaces:
        text = collapse_whitespace(text)
    return text


def words(text: str) -> list[str]:
    """The words of ``text`` as jiwer 4 splits them (its default WER transform): runs of two or
    more whitespace characters become one space, the ends are stripped, then the text is split on
    single spaces. So ``"a  b"`` and ``"\ta b "`` are two words, and ``"a\tb"`` is one."""
    return [word for word in _JIWER_SPACES.sub(" ", text).strip().split(" ") if word]
