"""The text metrics' batch normalisation on the compiled kernels (``_kernels.c``).

The kernels map each Python string through a :mod:`~vlmhyperbench.metrics.tables` table, with
no join, encoding or split, and hand back what the table cannot do alone. This module finishes
that part: with NFKC on, a string that holds a character NFKC may change is composed in Python
and mapped again (so "№ 12" stays on the fast path); what is left (a multi-character case fold,
a non-BMP character, bad input) is normalised by :func:`normalize_text`, and bad input raises an
error that names its sample.

The kernels are optional: an install without a C compiler has no ``_kernels`` and the callers in
:mod:`vlmhyperbench.metrics.fast` take their numpy/Arrow paths (same values, slower).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

from vlmhyperbench.metrics import tables
from vlmhyperbench.metrics.base import require_references
from vlmhyperbench.metrics.normalize import normalize_text

try:
    from vlmhyperbench.metrics import _kernels
except ImportError:  # installed without a C compiler
    _kernels = None


def built() -> bool:
    """Whether this install has the compiled kernels."""
    return _kernels is not None


def _table(options: dict, *, nfkc_inert: bool) -> bytes:
    return tables.table_bytes(
        options["case"],
        options["normalize_yo"],
        options["strip_punctuation"],
        options["collapse_spaces"],
        nfkc_inert,
    )


def _composed(strings: list) -> list:
    return [unicodedata.normalize("NFKC", s) if isinstance(s, str) else s for s in strings]


def normalize_many(strings: list[str], options: dict) -> list[str]:
    """``[normalize_text(s, **options) for s in strings]``."""
    collapse = options["collapse_spaces"]
    parts = _kernels.normalize(strings, _table(options, nfkc_inert=options["nfkc"]), collapse)
    if parts.count(None) == 0:  # the common case, at C speed
        return parts
    again = [i for i, part in enumerate(parts) if part is None]
    if options["nfkc"]:
        composed = _composed([strings[i] for i in again])
        retried = _kernels.normalize(composed, _table(options, nfkc_inert=False), collapse)
        for i, part in zip(again, retried, strict=True):
            parts[i] = part
        again = [i for i in again if parts[i] is None]
    for i in again:
        try:
            parts[i] = normalize_text(strings[i], **options)
        except TypeError as error:
            raise TypeError(f"string {i}: {error}") from None
    return parts


def match(left: list[str], right: list, options: dict, *, nested: bool) -> np.ndarray:
    """Whether ``normalize_text(left[i])`` equals that of any of ``right[i]`` (``nested``: a
    list of references per sample) or of ``right[i]`` itself."""
    collapse = options["collapse_spaces"]
    table = _table(options, nfkc_inert=options["nfkc"])
    status = np.frombuffer(_kernels.match(left, right, table, collapse, nested), np.uint8)
    out = status == 1
    again = np.flatnonzero(status == 2)
    if again.size and options["nfkc"]:
        rows = again.tolist()
        refs = [right[i] for i in rows]
        if nested:  # a list per sample (anything else stays as it is, for the error)
            refs = [_composed(r) if isinstance(r, list | tuple) else r for r in refs]
        else:
            refs = _composed(refs)
        retried = _kernels.match(
            _composed([left[i] for i in rows]),
            refs,
            _table(options, nfkc_inert=False),
            collapse,
            nested,
        )
        status = np.frombuffer(retried, np.uint8)
        out[again] = status == 1
        again = again[status == 2]
    out[again] = match_one_by_one(left, right, again.tolist(), options, nested=nested)
    return out


def match_one_by_one(
    left: Sequence[str], right: Sequence, indices: Iterable[int], options: dict, *, nested: bool
) -> list[bool]:
    """Samples ``indices`` of :func:`match`, normalised in full by :func:`normalize_text`; bad
    input raises an error that names its sample."""
    out = []
    for i in indices:
        try:
            references = require_references(right[i]) if nested else [right[i]]
            expected = [normalize_text(ref, **options) for ref in references]
            out.append(normalize_text(left[i], **options) in expected)
        except (TypeError, ValueError) as error:
            raise type(error)(f"sample {i}: {error}") from None
    return out
