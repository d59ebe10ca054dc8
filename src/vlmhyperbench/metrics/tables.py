"""Per-character tables of the text normalisation, for the batch paths of the text metrics.

For every BMP code point: what case folding (or lowering), ``ё``→``е``, punctuation and whitespace
handling make of that character on its own, as one uint16 table per set of options, with
``SPECIAL`` where one character cannot be normalised alone (a multi-character case fold, a
surrogate, ``Σ`` under ``lower``, a decomposed ``ё``, and, on request, any character NFKC might
change). The numpy/Arrow paths (:mod:`vlmhyperbench.metrics.fast`) and the compiled kernels
(:mod:`vlmhyperbench.metrics.compiled`) both map text through these tables.
"""

from __future__ import annotations

import functools
import operator
import unicodedata
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from vlmhyperbench.metrics.normalize import CaseMode

SPECIAL = 0xFFFF  # table value: normalise this string in Python
SPACE = 0x20
_SIGMA = 0x03A3  # str.lower() depends on the context for a capital sigma (final form)
_COMBINING_DIAERESIS = 0x0308
_YO = ((0x0451, 0x0435), (0x0401, 0x0415))  # ё → е, Ё → Е
_HANGUL_JAMO = (0x1100, 0x1200)  # conjoining jamo compose algorithmically under NFKC


class _Bmp(NamedTuple):
    """Per BMP code point: what each normalisation step does to that character alone."""

    casefold: np.ndarray  # the code point of ``c.casefold()`` where ``casefold_single``
    casefold_single: np.ndarray  # the result is one BMP character, not a surrogate or U+FFFF
    lower: np.ndarray
    lower_single: np.ndarray
    punctuation: np.ndarray  # Unicode category P*
    space: np.ndarray  # str.isspace
    nfkc_inert: np.ndarray  # NFKC leaves any text made of such characters unchanged


def _single_characters(results: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """For per-code-point results: the code point where a result is one plain BMP character."""
    codes = np.arange(len(results), dtype=np.int64)
    lengths = np.fromiter(map(len, results), dtype=np.int64, count=len(results))
    points = np.frombuffer("".join(results).encode("utf-32-le", "surrogatepass"), np.uint32)
    first = points[np.minimum(np.cumsum(lengths) - lengths, len(points) - 1)].astype(np.int64)
    single = (lengths == 1) & ((first < 0xD800) | (first >= 0xE000)) & (first < SPECIAL)
    return np.where(single, first, codes), single


@functools.lru_cache(maxsize=1)
def bmp() -> _Bmp:
    chars = list(map(chr, range(0x10000)))
    codes = np.arange(0x10000)
    casefold, casefold_single = _single_characters(list(map(str.casefold, chars)))
    lower, lower_single = _single_characters(list(map(str.lower, chars)))
    kinds = np.frombuffer(
        "".join(c[0] for c in map(unicodedata.category, chars)).encode("ascii"), np.uint8
    )
    space = np.fromiter(map(str.isspace, chars), dtype=bool, count=len(chars))
    # A character is inert when NFKC keeps it, it is a starter (combining class 0), and nothing
    # composes with it from the left: every second half of a canonical composition is a mark
    # (category M*) or a conjoining Hangul jamo (checked against the Unicode data in the tests).
    # NFKC then decomposes and recomposes each inert character on its own, so a text made only
    # of them is already in NFKC.
    nfkc = map(functools.partial(unicodedata.normalize, "NFKC"), chars)
    stable = np.fromiter(map(operator.eq, nfkc, chars), dtype=bool, count=len(chars))
    starter = np.fromiter(map(unicodedata.combining, chars), np.int64, len(chars)) == 0
    jamo = (codes >= _HANGUL_JAMO[0]) & (codes < _HANGUL_JAMO[1])
    inert = stable & starter & (kinds != ord("M")) & ~jamo
    return _Bmp(casefold, casefold_single, lower, lower_single, kinds == ord("P"), space, inert)


@functools.lru_cache(maxsize=64)
def table(
    case: CaseMode,
    normalize_yo: bool,
    strip_punctuation: bool,
    collapse_spaces: bool,
    nfkc_inert: bool = False,
) -> np.ndarray:
    """Per BMP code unit: the normalised code unit, or ``SPECIAL``.

    With ``nfkc_inert`` every character that NFKC might change (see :class:`_Bmp`) is special
    too, so that a text without special code units needs no NFKC.
    """
    per_point = bmp()
    codes = np.arange(0x10000, dtype=np.int64)
    if case == "casefold":
        mapped, special = per_point.casefold.copy(), ~per_point.casefold_single
    elif case == "lower":
        mapped, special = per_point.lower.copy(), ~per_point.lower_single | (codes == _SIGMA)
    else:
        mapped, special = codes.copy(), np.zeros(0x10000, dtype=bool)
    special |= ((codes >= 0xD800) & (codes < 0xE000)) | (codes == SPECIAL)
    if normalize_yo:
        special[_COMBINING_DIAERESIS] = True
        for yo, ye in _YO:
            mapped[mapped == yo] = ye
    if strip_punctuation:
        mapped[per_point.punctuation[mapped]] = SPACE
    if collapse_spaces:
        mapped[per_point.space[mapped]] = SPACE
    if nfkc_inert:
        special |= ~per_point.nfkc_inert
    out = mapped.astype(np.uint16)
    out[special] = SPECIAL
    out[0] = 0
    return out


@functools.lru_cache(maxsize=64)
def arrow_table(
    case: CaseMode,
    normalize_yo: bool,
    strip_punctuation: bool,
    collapse_spaces: bool,
    nfkc_inert: bool,
) -> pa.Array:
    return pa.array(table(case, normalize_yo, strip_punctuation, collapse_spaces, nfkc_inert))


@functools.lru_cache(maxsize=64)
def table_bytes(
    case: CaseMode,
    normalize_yo: bool,
    strip_punctuation: bool,
    collapse_spaces: bool,
    nfkc_inert: bool,
) -> bytes:
    return table(case, normalize_yo, strip_punctuation, collapse_spaces, nfkc_inert).tobytes()
