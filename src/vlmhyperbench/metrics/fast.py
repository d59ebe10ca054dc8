"""Vectorised text normalisation and edit distances for the batch paths of the text metrics.

:func:`normalize_many` returns exactly ``[normalize_one(s, ...) for s in strings]`` (tested on
arbitrary Unicode), but does the per-character work for all strings at once: the strings are
joined with ``\\x00`` (a code point that NFKC, case folding, punctuation and whitespace handling
all leave alone, and across which normalisation never reaches), NFKC runs once on the joined
text, and case folding, ``ё``→``е``, punctuation and whitespace are one table lookup per UTF-16
code unit in numpy. Strings the table cannot handle exactly (a character whose case folding is
not one BMP character, a character outside the BMP, ``Σ`` under ``lower``, a decomposed ``ё``)
are normalised one by one in Python.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from typing import Literal

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cpdist

from vlmhyperbench.metrics.normalize import collapse_whitespace, fold_yo, remove_punctuation

CaseMode = Literal["casefold", "lower"] | None

_SEP = "\x00"
_SPECIAL = 0xFFFF  # table value: normalise this string in Python
_SIGMA = "\u03a3"  # str.lower() depends on the context for a capital sigma (final form)
_COMBINING_DIAERESIS = "\u0308"


def normalize_one(
    text: str,
    *,
    case: CaseMode = "casefold",
    nfkc: bool = True,
    normalize_yo: bool = False,
    strip_punctuation: bool = False,
    collapse_spaces: bool = True,
) -> str:
    """The reference semantics, one string: NFKC, case, ``ё``→``е``, punctuation, whitespace."""
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


@functools.lru_cache(maxsize=32)
def _table(
    case: CaseMode, normalize_yo: bool, strip_punctuation: bool, collapse_spaces: bool
) -> np.ndarray:
    """Per BMP code unit: the normalised code unit, or ``_SPECIAL``."""
    table = np.arange(0x10000, dtype=np.uint16)
    for code in range(0x10000):
        char = chr(code)
        if case == "casefold":
            mapped = char.casefold()
        elif case == "lower":
            mapped = char.lower()
        else:
            mapped = char
        special = (
            len(mapped) != 1
            or 0xD800 <= ord(mapped) < 0xE000
            or 0xD800 <= code < 0xE000
            or code == _SPECIAL
            or (case == "lower" and char == _SIGMA)
            or (normalize_yo and char == _COMBINING_DIAERESIS)
        )
        if special:
            table[code] = _SPECIAL
            continue
        if normalize_yo:
            mapped = fold_yo(mapped)
        if strip_punctuation and unicodedata.category(mapped).startswith("P"):
            mapped = " "
        if collapse_spaces and mapped.isspace():
            mapped = " "
        if mapped != char:
            table[code] = ord(mapped)
    table[0] = 0
    return table


def _nfkc_all(strings: list[str], joined: str) -> tuple[list[str], str]:
    if unicodedata.is_normalized("NFKC", joined):
        return strings, joined
    fixed = [
        s if unicodedata.is_normalized("NFKC", s) else unicodedata.normalize("NFKC", s)
        for s in strings
    ]
    return fixed, _SEP.join(fixed)


def _collapse_joined(text: str) -> str:
    """Collapse runs of spaces and strip every part of a ``\\x00``-joined text."""
    while "  " in text:
        text = text.replace("  ", " ")
    return text.replace(" " + _SEP, _SEP).replace(_SEP + " ", _SEP).strip(" ")


def normalize_many(
    strings: Sequence[str],
    *,
    case: CaseMode = "casefold",
    nfkc: bool = True,
    normalize_yo: bool = False,
    strip_punctuation: bool = False,
    collapse_spaces: bool = True,
) -> list[str]:
    """``[normalize_one(s, ...) for s in strings]``, vectorised (see the module docstring)."""
    options = {
        "case": case,
        "nfkc": nfkc,
        "normalize_yo": normalize_yo,
        "strip_punctuation": strip_punctuation,
        "collapse_spaces": collapse_spaces,
    }
    strings = list(strings)
    if not strings:
        return []
    joined = _SEP.join(strings)
    if joined.count(_SEP) != len(strings) - 1:  # a string holds the separator itself
        return [normalize_one(s, **options) for s in strings]
    if nfkc:
        strings, joined = _nfkc_all(strings, joined)
    codes = np.frombuffer(joined.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)
    mapped = _table(case, normalize_yo, strip_punctuation, collapse_spaces)[codes]
    text = mapped.tobytes().decode("utf-16-le", "surrogatepass")
    if collapse_spaces:
        text = _collapse_joined(text)
    parts = text.split(_SEP)
    special = np.flatnonzero(mapped == _SPECIAL)
    if special.size:
        separators = np.flatnonzero(codes == 0)
        for index in np.unique(np.searchsorted(separators, special)).tolist():
            parts[index] = normalize_one(strings[index], **options)
    return parts


def levenshtein_pairs(left: Sequence[str], right: Sequence[str]) -> np.ndarray:
    """Levenshtein distance of ``left[i]`` and ``right[i]`` for every i (int64)."""
    if len(left) != len(right):
        raise ValueError(f"{len(left)} left strings but {len(right)} right strings")
    if not left:
        return np.zeros(0, dtype=np.int64)
    return cpdist(left, right, scorer=Levenshtein.distance, dtype=np.int64)


def lengths(strings: Sequence[str]) -> np.ndarray:
    return np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))


def flatten_references(references: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """All references in one list and, for each, the index of its sample."""
    counts = np.fromiter(map(len, references), dtype=np.int64, count=len(references))
    if np.any(counts == 0):
        raise ValueError("at least one reference answer is required for every sample")
    if np.all(counts == 1):
        return [refs[0] for refs in references], np.arange(len(references))
    flat = [ref for refs in references for ref in refs]
    return flat, np.repeat(np.arange(len(references)), counts)


def best_per_sample(values: np.ndarray, owner: np.ndarray, n: int, *, lowest: bool) -> np.ndarray:
    """For each sample, the index (into ``values``) of its best reference (first on ties)."""
    if len(values) == n:  # one reference per sample
        return np.arange(n)
    order = np.lexsort((np.arange(len(values)), values if lowest else -values, owner))
    first = np.ones(len(order), dtype=bool)
    first[1:] = owner[order][1:] != owner[order][:-1]
    best = np.empty(n, dtype=np.int64)
    best[owner[order][first]] = order[first]
    return best
