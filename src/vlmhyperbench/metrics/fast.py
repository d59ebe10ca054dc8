"""Vectorised text normalisation and edit distances for the batch paths of the text metrics.

:func:`normalize_many` returns exactly ``[normalize_text(s, ...) for s in strings]`` (tested on
arbitrary Unicode); :func:`normalized_equal` (and :func:`matches_any`, for reference lists)
answers ``normalize_text(a) == normalize_text(b)`` for many pairs. Both map each character
through a per-code-point table (:mod:`vlmhyperbench.metrics.tables`) and normalise in Python
only the strings the table cannot handle alone (a character whose case folding is not one BMP
character, a character outside the BMP, ``Σ`` under ``lower``, a decomposed ``ё``).

Where the package was built with a C compiler they run on the compiled kernels
(:mod:`vlmhyperbench.metrics.compiled`), string by string on the Python objects. Otherwise
they take the numpy/Arrow paths below, with the same values and 2-3× slower:

- :func:`normalize_many` joins the strings with ``\\x00`` (a code point that NFKC, case folding,
  punctuation and whitespace handling all leave alone, and across which normalisation never
  reaches), runs NFKC once on the joined text and maps its UTF-16 code units in numpy;
- :func:`normalized_equal` works a chunk of pairs at a time so that the arrays stay in the CPU
  cache: the chunk's strings are joined, mapped through the table (by Arrow, which takes the
  UTF-16 code units as indices), whitespace runs are dropped with one mask, and Arrow compares
  the mapped code units of each pair. With NFKC on, the table also flags every character that
  NFKC could change in context, so that no NFKC pass is needed; pairs holding a flagged
  character take the :func:`normalize_many` path.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cpdist

from vlmhyperbench.metrics import compiled, tables
from vlmhyperbench.metrics.normalize import CaseMode, normalize_text
from vlmhyperbench.metrics.tables import SPACE, SPECIAL

_SEP = "\x00"  # joins strings for the numpy/Arrow paths
_PAIR_CHUNK = 8192  # pairs per step of normalized_equal and matches_any: arrays stay in cache


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
    """``[normalize_text(s, ...) for s in strings]``, vectorised (see the module docstring)."""
    options = _options(case, nfkc, normalize_yo, strip_punctuation, collapse_spaces)
    strings = list(strings)
    if not strings:
        return []
    if compiled.built():
        return compiled.normalize_many(strings, options)
    joined = _SEP.join(strings)
    if joined.count(_SEP) != len(strings) - 1:  # a string holds the separator itself
        return [normalize_text(s, **options) for s in strings]
    if nfkc:
        strings, joined = _nfkc_all(strings, joined)
    codes = np.frombuffer(joined.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)
    mapped = tables.table(case, normalize_yo, strip_punctuation, collapse_spaces)[codes]
    text = mapped.tobytes().decode("utf-16-le", "surrogatepass")
    if collapse_spaces:
        text = _collapse_joined(text)
    parts = text.split(_SEP)
    special = np.flatnonzero(mapped == SPECIAL)
    if special.size:
        separators = np.flatnonzero(codes == 0)
        for index in np.unique(np.searchsorted(separators, special)).tolist():
            parts[index] = normalize_text(strings[index], **options)
    return parts


def _options(
    case: CaseMode,
    nfkc: bool,
    normalize_yo: bool,
    strip_punctuation: bool,
    collapse_spaces: bool,
) -> dict:
    return {
        "case": case,
        "nfkc": nfkc,
        "normalize_yo": normalize_yo,
        "strip_punctuation": strip_punctuation,
        "collapse_spaces": collapse_spaces,
    }


def normalized_equal(
    left: Sequence[str],
    right: Sequence[str],
    *,
    case: CaseMode = "casefold",
    nfkc: bool = True,
    normalize_yo: bool = False,
    strip_punctuation: bool = False,
    collapse_spaces: bool = True,
) -> np.ndarray:
    """``normalize_text(left[i], ...) == normalize_text(right[i], ...)`` for every i (bool)."""
    if len(left) != len(right):
        raise ValueError(f"{len(left)} left strings but {len(right)} right strings")
    options = _options(case, nfkc, normalize_yo, strip_punctuation, collapse_spaces)
    return _match(left, right, options, nested=False)


def matches_any(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    case: CaseMode = "casefold",
    nfkc: bool = True,
    normalize_yo: bool = False,
    strip_punctuation: bool = False,
    collapse_spaces: bool = True,
) -> np.ndarray:
    """Whether ``normalize_text(predictions[i], ...)`` equals that of any of ``references[i]``."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    options = _options(case, nfkc, normalize_yo, strip_punctuation, collapse_spaces)
    return _match(predictions, references, options, nested=True)


def _match(left: Sequence[str], right: Sequence, options: dict, *, nested: bool) -> np.ndarray:
    """:func:`matches_any` (``nested``: a list of references per sample) or
    :func:`normalized_equal`, on the compiled kernels or, a chunk of samples at a time from the
    input lists to the answers (so that each string is fetched from memory once), on the
    numpy/Arrow path."""
    left = left if isinstance(left, list) else list(left)
    right = right if isinstance(right, list) else list(right)
    if compiled.built():
        return compiled.match(left, right, options, nested=nested)
    table = tables.arrow_table(
        options["case"],
        options["normalize_yo"],
        options["strip_punctuation"],
        options["collapse_spaces"],
        options["nfkc"],
    )
    equal_chunk = _references_chunk if nested else _pairs_chunk
    out = np.empty(len(left), dtype=bool)
    for start in range(0, len(left), _PAIR_CHUNK):
        stop = start + _PAIR_CHUNK
        try:
            out[start:stop] = equal_chunk(left[start:stop], right[start:stop], table, options)
        except (TypeError, ValueError):  # bad input: name the sample (indices from the start)
            compiled.match_one_by_one(left, right, range(start, stop), options, nested=nested)
            raise
    return out


def _pairs_chunk(left: list[str], right: list[str], table: pa.Array, options: dict) -> np.ndarray:
    return _equal_chunk([*left, *right, ""], table, options)


def _references_chunk(
    predictions: list[str], references: list, table: pa.Array, options: dict
) -> np.ndarray:
    try:
        expected = [ref for (ref,) in references]  # one reference per sample
    except ValueError:
        flat, owner = flatten_references(references)
        hits = _match([predictions[i] for i in owner.tolist()], flat, options, nested=False)
        out = np.zeros(len(predictions), dtype=bool)
        out[owner[hits]] = True
        return out
    return _equal_chunk([*predictions, *expected, ""], table, options)


def _equal_chunk(strings: list[str], table: pa.Array, options: dict) -> np.ndarray:
    """:func:`normalized_equal` of one chunk: ``strings`` holds the n left strings, the n right
    strings and a final ``""``.

    Joined with ``\\x00`` (so that each string is followed by one), they go through the table in
    one piece. Collapsing whitespace drops every space that follows a space or a separator,
    which leaves at most one space at the end of a string: the comparison skips it. Arrow then
    compares the code units of left string i with those of right string i. Pairs with a
    special code unit are normalised in full.
    """
    n = len(strings) // 2
    text = _SEP.join(strings)
    codes = np.frombuffer(text.encode("utf-16-le", "surrogatepass"), np.uint16)
    mapped = pc.take(table, pa.array(codes)).to_numpy()  # Arrow takes uint16 indices as they are
    collapse = options["collapse_spaces"]
    if collapse:
        mapped = _drop_repeated_spaces(mapped)
    ends = np.flatnonzero(mapped == 0)
    if len(ends) != 2 * n:  # a string holds the separator itself
        return _equal_in_full(strings[:n], strings[n : 2 * n], options)
    # Values of Arrow arrays: string 0, what follows it (its trailing space, its separator),
    # string 1, ...; left strings come first, then right ones.
    offsets = np.empty(4 * n + 1, dtype=np.int64)
    offsets[0] = 0
    np.add(ends, 1, out=offsets[2::2])
    offsets[1::2] = ends
    if collapse:  # ends - 1 = -1 reads the final separator
        offsets[1::2] -= mapped[ends - 1] == SPACE
    equal = _equal_segments(mapped, offsets, 2 * n)[::2]
    if mapped.max() == SPECIAL:
        rows = np.zeros(n, dtype=bool)
        rows[np.searchsorted(ends, np.flatnonzero(mapped == SPECIAL)) % n] = True
        pairs = np.flatnonzero(rows).tolist()
        left, right = [strings[i] for i in pairs], [strings[n + i] for i in pairs]
        equal[pairs] = _equal_in_full(left, right, options)
    return equal


def _drop_repeated_spaces(codes: np.ndarray) -> np.ndarray:
    """Drop every space (of mapped strings each followed by a separator, 0) that follows a
    space, a separator or the start: leading spaces and all but the first of each run."""
    space = codes == SPACE
    drop = np.empty(len(codes), dtype=bool)
    drop[0] = space[0]
    np.logical_or(space[:-1], codes[:-1] == 0, out=drop[1:])
    np.logical_and(drop, space, out=drop)
    if not drop.any():
        return codes
    keep = np.packbits(~drop, bitorder="little")  # Arrow's filter copies runs of kept values
    mask = pa.Array.from_buffers(pa.bool_(), len(codes), [None, pa.py_buffer(keep)])
    return pc.filter(pa.array(codes), mask).to_numpy()


def _equal_segments(codes: np.ndarray, offsets: np.ndarray, n: int) -> np.ndarray:
    """Whether value i equals value n + i, the values of ``codes`` being cut at ``offsets``."""
    data = pa.py_buffer(codes)
    in_bytes = offsets * codes.itemsize
    binary = pa.large_binary()
    left = pa.Array.from_buffers(binary, n, [None, pa.py_buffer(in_bytes[: n + 1]), data])
    right = pa.Array.from_buffers(binary, n, [None, pa.py_buffer(in_bytes[n:]), data])
    return pc.equal(left, right).to_numpy(zero_copy_only=False, writable=True)


def _equal_in_full(left: list[str], right: list[str], options: dict) -> np.ndarray:
    pairs = zip(normalize_many(left, **options), normalize_many(right, **options), strict=True)
    return np.fromiter((a == b for a, b in pairs), dtype=bool, count=len(left))


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
    try:
        return [ref for (ref,) in references], np.arange(len(references))  # one per sample
    except ValueError:  # not one per sample
        pass
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            raise TypeError(f"sample {i}: references must be a list of strings, not a string")
    counts = np.fromiter(map(len, references), dtype=np.int64, count=len(references))
    if np.any(counts == 0):
        first = int(np.flatnonzero(counts == 0)[0])
        raise ValueError(f"sample {first}: at least one reference answer is required")
    flat = list(chain.from_iterable(references))
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
