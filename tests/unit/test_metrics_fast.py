"""The tables behind the vectorised normalisation, checked against the Unicode data."""

from __future__ import annotations

import itertools
import sys
import unicodedata
from unittest import mock

import numpy as np
import pytest

from tests.helpers import TEXT_KERNELS, text_kernel
from vlmhyperbench.metrics import compiled, tables
from vlmhyperbench.metrics.fast import matches_any, normalize_many, normalized_equal
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
    inert = tables.bmp().nfkc_inert
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
    table = tables.table(
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
            or (options["nfkc"] and not tables.bmp().nfkc_inert[code])
        )
        if special and code:
            assert table[code] == tables.SPECIAL, hex(code)
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


@pytest.mark.parametrize("kernel", TEXT_KERNELS)
@pytest.mark.parametrize("options", OPTIONS)
def test_normalized_equal_on_hard_pairs(options: dict, kernel: str) -> None:
    left = [a for a, _ in PAIRS] + [b for _, b in PAIRS]
    right = [b for _, b in PAIRS] + [a for a, _ in PAIRS]
    expected = [
        normalize_text(a, **options) == normalize_text(b, **options)
        for a, b in zip(left, right, strict=True)
    ]
    with text_kernel(kernel):
        assert normalized_equal(left, right, **options).tolist() == expected


@pytest.mark.parametrize("kernel", TEXT_KERNELS)
def test_normalized_equal_default_exact_match_options(kernel: str) -> None:
    options = {"strip_punctuation": True, "normalize_yo": True}
    with text_kernel(kernel):
        assert normalized_equal([a for a, _ in PAIRS], [b for _, b in PAIRS], **options).all()
        # A string holding the numpy path's separator sends its chunk the one-by-one way.
        left, right = ["a\x00b", "Ёлка", "x"], ["A\x00B ", "елка.", "y"]
        assert normalized_equal(left, right, **options).tolist() == [True, True, False]
        assert normalized_equal([], [], **options).tolist() == []
        with pytest.raises(ValueError, match="2 left strings but 1 right"):
            normalized_equal(["a", "b"], ["a"])


def test_compiled_kernel_is_built() -> None:
    # `pip install -e .` compiles it where a C compiler exists (CI has one); without it
    # exact_match still works on the numpy path, ~3× slower (benchmarks/metrics_throughput.py).
    assert compiled.built(), "the C extension vlmhyperbench.metrics._kernels was not built"


@pytest.mark.parametrize("kernel", TEXT_KERNELS)
def test_matches_any_beyond_the_common_case(kernel: str) -> None:
    options = {"strip_punctuation": True, "normalize_yo": True}
    long_text = "Ёлкин, Иван " * 200  # longer than the compiled kernel's first buffer
    predictions = [long_text, "café ÉTÉ", "x", "Straße", "a", "b"]
    references = [
        [long_text.upper() + "."],
        ("CAFE ETE", "Café été!"),  # a tuple; the second one matches (Latin-1 strings)
        ["y", "z", " X "],
        ["𐐀", "STRASSE"],  # a reference the table cannot handle, then a match
        ["b", "ß"],
        ["b"],
    ]
    with text_kernel(kernel):
        assert matches_any(predictions, references, **options).tolist() == [
            True, True, True, True, False, True,
        ]  # fmt: skip
        hits = matches_any(tuple(predictions), tuple(references), **options)  # any sequence
        assert hits.tolist() == [True, True, True, True, False, True]


@pytest.mark.parametrize("kernel", TEXT_KERNELS)
def test_matches_any_names_the_sample_with_bad_references(kernel: str) -> None:
    with text_kernel(kernel):
        with pytest.raises(ValueError, match="sample 1: at least one reference"):
            matches_any(["a", "b", "c"], [["a"], [], ["c"]])
        with pytest.raises(TypeError, match="sample 1: references must be a list of strings"):
            matches_any(["a", "b", "c"], [["a"], "bb", ["c"]])
        with pytest.raises(TypeError, match="sample 2"):
            matches_any(["a", "b", None], [["a"], ["b"], ["c"]])


def test_compiled_kernels_compose_nfkc_instead_of_falling_back() -> None:
    # "№", full-width digits and ligatures change under NFKC: the kernels compose such strings
    # and map them again rather than sending them to normalize_text one by one.
    options = {"strip_punctuation": True, "normalize_yo": True}
    predictions = ["Паспорт № １２", "ﬁle", "Straße"]
    references = [["паспорт no 12"], ["FILE."], ["strasse"]]
    calls = []

    def counted(text: str, **kwargs) -> str:
        calls.append(text)
        return normalize_text(text, **kwargs)

    with text_kernel("compiled"), mock.patch.object(compiled, "normalize_text", counted):
        assert matches_any(predictions, references, **options).tolist() == [True, True, True]
        assert sorted(calls) == ["Straße", "strasse"]  # ß folds to two letters: Python's job
        calls.clear()
        assert normalize_many(predictions, **options) == ["паспорт no 12", "file", "strasse"]
        assert calls == ["Straße"]
