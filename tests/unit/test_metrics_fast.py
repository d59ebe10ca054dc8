"""The tables behind the vectorised normalisation, checked against the Unicode data."""

from __future__ import annotations

import itertools
import sys
import unicodedata

import numpy as np
import pytest

from vlmhyperbench.metrics import fast
from vlmhyperbench.metrics.fast import normalized_equal
from vlmhyperbench.metrics.normalize import fold_yo, normalize_text

OPTIONS = [
    {
        "case": case,
        "nfkc": nfkc,
        "normalize_yo": yo,
        "strip_punctuation": punctuation,
        "collapse_spaces": spaces,
    }
    for case, nfkc, yo, punctuation, spaces in itertools.product(
        ["casefold", "lower", None], [True, False], [True, False], [True, False], [True, False]
    )
]


def _second_halves() -> set[str]:
    """Every character that a canonical composition can join to what precedes it."""
    out = set()
    for code in range(sys.maxunicode + 1):
        parts = unicodedata.decomposition(chr(code)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            out.add(chr(int(parts[1], 16)))
    return out


def test_nfkc_inert_characters_never_compose() -> None:
    # The claim behind skipping NFKC: a text made of inert characters is already in NFKC.
    inert = fast._bmp().nfkc_inert
    second = _second_halves()
    assert not [c for c in second if ord(c) < 0x10000 and inert[ord(c)]]
    for code in np.flatnonzero(inert).tolist():
        char = chr(code)
        assert unicodedata.normalize("NFKC", char) == char
        first = unicodedata.normalize("NFKD", char)[0]
        assert unicodedata.combining(first) == 0 and first not in second, hex(code)
    # Hangul: syllables are inert, the conjoining jamo that compose into them are not.
    assert inert[ord("각")] and not inert[0x1100] and not inert[0x1161] and not inert[0x11A8]


@pytest.mark.parametrize("options", OPTIONS[::5] + OPTIONS[-1:])
def test_table_is_each_character_normalised_alone(options: dict) -> None:
    case, yo = options["case"], options["normalize_yo"]
    table = fast._table(
        case, yo, options["strip_punctuation"], options["collapse_spaces"], options["nfkc"]
    )
    for code in range(0x10000):
        char = chr(code)
        mapped = {"casefold": char.casefold(), "lower": char.lower(), None: char}[case]
        special = (
            len(mapped) != 1
            or 0xD800 <= ord(mapped) < 0xE000
            or 0xD800 <= code < 0xE000
            or ord(mapped) > 0xFFFE
            or (case == "lower" and char == "Σ")
            or (yo and char == "\u0308")
            or (options["nfkc"] and not fast._bmp().nfkc_inert[code])
        )
        if special and code:
            assert table[code] == fast._SPECIAL, hex(code)
            continue
        mapped = fold_yo(mapped) if yo else mapped
        if options["strip_punctuation"] and unicodedata.category(mapped).startswith("P"):
            mapped = " "
        if options["collapse_spaces"] and mapped.isspace():
            mapped = " "
        assert table[code] == ord(mapped), hex(code)


# Pairs equal only through NFKC composition or compatibility, case folding that is not
# lowercasing, ё, punctuation or spacing, each inside otherwise plain text.
PAIRS = [
    ("Иван 각", "ИВАН " + unicodedata.normalize("NFD", "각")),
    ("Иван ொ", "иван \u0bc6\u0bbe"),
    ("Åse", "A\u030ase"),
    ("№ １２３", "No 123"),
    ("ﬁle", "file"),
    ("Straße", "STRASSE"),
    ("ὈΔΥΣΣΕΎΣ", "ὀδυσσεύς"),
    ("İstanbul", "i̇stanbul"),
    ("Ёлкин,  Иван.", " елкин иван"),
    ("г. Москва,\u00a0ул.\u2009Ленина", "Г МОСКВА УЛ ЛЕНИНА"),
    ("a\u3000b", "a b"),
    ("𐐀bc", "𐐨BC"),
    ("", "   "),
]


@pytest.mark.parametrize("options", OPTIONS)
def test_normalized_equal_on_hard_pairs(options: dict) -> None:
    left = [a for a, _ in PAIRS] + [b for _, b in PAIRS]
    right = [b for _, b in PAIRS] + [a for a, _ in PAIRS]
    expected = [
        normalize_text(a, **options) == normalize_text(b, **options)
        for a, b in zip(left, right, strict=True)
    ]
    assert normalized_equal(left, right, **options).tolist() == expected


def test_normalized_equal_default_exact_match_options() -> None:
    options = {"strip_punctuation": True, "normalize_yo": True}
    assert normalized_equal([a for a, _ in PAIRS], [b for _, b in PAIRS], **options).all()
    # A string holding the separator sends its chunk the one-by-one way.
    left, right = ["a\x00b", "Ёлка", "x"], ["A\x00B ", "елка.", "y"]
    assert normalized_equal(left, right, **options).tolist() == [True, True, False]
    assert normalized_equal([], [], **options).tolist() == []
    with pytest.raises(ValueError, match="2 left strings but 1 right"):
        normalized_equal(["a", "b"], ["a"])
