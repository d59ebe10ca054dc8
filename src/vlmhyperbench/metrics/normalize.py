"""Text normalisation shared by the text and classification metrics.

Every option is a keyword so that a registry entry can switch it on or off through ``params``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

CaseMode = Literal["casefold", "lower"] | None

_WHITESPACE = re.compile(r"\s+")
# A decomposed "ё" (е + combining diaeresis) survives when NFKC is off; fold it as well.
_YO = str.maketrans({"ё": "е", "Ё": "Е"})
_DECOMPOSED_YO = re.compile("([еЕ])\u0308")


def fold_yo(text: str) -> str:
    """Map ``ё``/``Ё`` to ``е``/``Е``: Russian texts write them interchangeably."""
    return _DECOMPOSED_YO.sub(r"\1", text).translate(_YO)


def remove_punctuation(text: str) -> str:
    """Replace every Unicode punctuation character (category ``P*``) with a space.

    A space rather than nothing keeps words apart ("Иванов,Иван" → "Иванов Иван"); callers
    collapse whitespace afterwards.
    """
    return "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)


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
    RRC DocVQA script; ``None``: kept), ``ё``→``е``, punctuation, whitespace. The batch paths
    in :mod:`vlmhyperbench.metrics.fast` return exactly this for every string.
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
