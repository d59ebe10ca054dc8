"""Invariants (hypothesis): ranges, identity, symmetry, and batch == one-by-one."""

from __future__ import annotations

import math
import unicodedata
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import TEXT_KERNELS, text_kernel
from vlmhyperbench.metrics import fast
from vlmhyperbench.metrics.fast import matches_any, normalize_many, normalized_equal
from vlmhyperbench.metrics.ngram import bleu, chrf
from vlmhyperbench.metrics.normalize import normalize_text
from vlmhyperbench.metrics.ordering import kendall_tau, positional_accuracy, spearman_rho
from vlmhyperbench.metrics.text import anls, cer, exact_match, token_f1, wer
from vlmhyperbench.metrics.vqa import relaxed_accuracy, vqa_accuracy

# Text that exercises the fast paths' special cases: Cyrillic, ё and its decomposed form,
# ß / ŉ / ǰ (multi-letter case folds), Σ and ς (casefold differs from lower), İ, full-width and
# other NFKC compatibility forms, combining marks, Hangul jamo and a Tamil vowel sign (NFKC
# composes them with what precedes), non-BMP letters, punctuation, odd spaces, and runs of
# spaces and punctuation.
TRICKY = (
    "аЁёеЕ\u0308ßŉǰΣσςİ１Ａ﹖«»—–…№ﬁ²½Å\u0301\u0327\u1100\u1161\u11a8가각ொ\u00a0\u2009\u3000"
    "\t\n\x1c\x85 .,!?-😀𐐀\x00"
)
pieces = st.sampled_from(TRICKY) | st.sampled_from(["  ", ". ", " ,", "  \t"]) | st.characters()
# Mostly plain text too, so that most pairs take the table path rather than the Python one.
plain = st.sampled_from("абвгдеёжЁЕАБ abcXYZ019.,!?-«»\t") | st.sampled_from(["  ", ". "])
texts = st.lists(pieces, max_size=16).map("".join) | st.lists(plain, max_size=16).map("".join)
reference_lists = st.lists(texts, min_size=1, max_size=3)
options = st.fixed_dictionaries(
    {
        "case": st.sampled_from(["casefold", "lower", None]),
        "nfkc": st.booleans(),
        "normalize_yo": st.booleans(),
        "strip_punctuation": st.booleans(),
        "collapse_spaces": st.booleans(),
    }
)


@pytest.mark.parametrize("kernel", TEXT_KERNELS)
@settings(max_examples=300, deadline=None)
@given(strings=st.lists(texts, max_size=8), opts=options)
def test_normalize_many_equals_one_by_one(kernel: str, strings: list[str], opts: dict) -> None:
    with text_kernel(kernel):
        assert normalize_many(strings, **opts) == [normalize_text(s, **opts) for s in strings]


@pytest.mark.parametrize("kernel", TEXT_KERNELS)
@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(texts, texts), max_size=8), opts=options, chunk=st.integers(1, 4))
def test_normalized_equal_equals_one_by_one(
    kernel: str, pairs: list[tuple[str, str]], opts: dict, chunk: int
) -> None:
    left, right = [a for a, _ in pairs], [b for _, b in pairs]
    expected = [normalize_text(a, **opts) == normalize_text(b, **opts) for a, b in pairs]
    # Several chunks of the numpy path, one pair each too.
    with text_kernel(kernel), mock.patch.object(fast, "_PAIR_CHUNK", chunk):
        assert normalized_equal(left, right, **opts).tolist() == expected
    # Pairs that only differ by case, ё, spacing, punctuation or Unicode normal form: mostly
    # equal ones.
    forms = [unicodedata.normalize(form, a) for form in ("NFD", "NFKD", "NFKC") for a in left]
    cased = [a.upper().replace("е", "ё") + " ." for a in left]
    left = left * 4
    expected = [
        normalize_text(a, **opts) == normalize_text(b, **opts)
        for a, b in zip(left, forms + cased, strict=True)
    ]
    with text_kernel(kernel):
        assert normalized_equal(left, forms + cased, **opts).tolist() == expected


@pytest.mark.parametrize("kernel", TEXT_KERNELS)
@settings(max_examples=200, deadline=None)
@given(
    predictions=st.lists(texts, min_size=1, max_size=8),
    data=st.data(),
    opts=options,
    chunk=st.integers(1, 4),
)
def test_matches_any_equals_one_by_one(
    kernel: str, predictions: list[str], data: st.DataObject, opts: dict, chunk: int
) -> None:
    # Mostly one reference per sample (the common case), sometimes several.
    references = [data.draw(st.lists(texts, min_size=1, max_size=3)) for _ in predictions]
    for i, prediction in enumerate(predictions):
        if data.draw(st.booleans()):
            references[i] = [data.draw(st.sampled_from([prediction, prediction.swapcase()]))]
    expected = [
        any(normalize_text(p, **opts) == normalize_text(r, **opts) for r in refs)
        for p, refs in zip(predictions, references, strict=True)
    ]
    with text_kernel(kernel), mock.patch.object(fast, "_PAIR_CHUNK", chunk):
        assert matches_any(predictions, references, **opts).tolist() == expected


@pytest.mark.parametrize("kernel", TEXT_KERNELS)
@settings(max_examples=150, deadline=None)
@given(predictions=st.lists(texts, min_size=1, max_size=6), data=st.data())
def test_batch_equals_one_by_one(kernel: str, predictions: list[str], data: st.DataObject) -> None:
    references = [data.draw(reference_lists) for _ in predictions]
    for metric in (exact_match, anls, cer, wer):
        with text_kernel(kernel):
            batch = metric.batch(predictions, references)
        values = batch["value"] if isinstance(batch, dict) else batch
        expected = [metric(p, r) for p, r in zip(predictions, references, strict=True)]
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12, err_msg=metric.__name__)
    out = cer.batch(predictions, references, clip=False)
    for i, (p, r) in enumerate(zip(predictions, references, strict=True)):
        assert out["edits"][i] == cer.row_columns(p, r)["edits"]
        assert out["ref_len"][i] == cer.row_columns(p, r)["ref_len"]


@settings(max_examples=200, deadline=None)
@given(prediction=texts, references=reference_lists)
def test_scores_are_in_range(prediction: str, references: list[str]) -> None:
    unit = [
        anls(prediction, references),
        exact_match(prediction, references),
        cer(prediction, references),
        wer(prediction, references),
        token_f1(prediction, references),
        vqa_accuracy(prediction, references),
        relaxed_accuracy(prediction, references),
    ]
    for value in unit:
        assert 0.0 <= value <= 1.0 and not math.isnan(value)
    assert cer(prediction, references, clip=False) >= 0.0
    for value in (bleu(prediction, references), chrf(prediction, references)):
        assert 0.0 <= value <= 100.0 + 1e-9  # sacrebleu's own float error (100.00000000000004)


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=24))
def test_identical_strings_score_perfectly(text: str) -> None:
    assert anls(text, [text]) == 1.0
    assert exact_match(text, [text]) == 1.0
    assert cer(text, [text]) == 0.0 and wer(text, [text]) == 0.0
    assert token_f1(text, [text]) == 1.0
    assert vqa_accuracy(text, [text] * 10, process_references=True) == 1.0
    assert relaxed_accuracy(text.strip(), [text.strip()]) == 1.0


@settings(max_examples=200, deadline=None)
@given(a=texts, b=texts)
def test_symmetric_metrics(a: str, b: str) -> None:
    assert anls(a, [b]) == anls(b, [a])
    assert exact_match(a, [b]) == exact_match(b, [a])
    assert token_f1(a, [b]) == token_f1(b, [a])


@settings(max_examples=150, deadline=None)
@given(order=st.permutations(list(range(1, 8))), data=st.data())
def test_ordering_invariants(order: list[int], data: st.DataObject) -> None:
    truth = [str(order)]
    same = ", ".join(map(str, order))
    assert kendall_tau(same, truth) == 1.0
    assert spearman_rho(same, truth) == 1.0
    assert positional_accuracy(same, truth) == 1.0
    reversed_order = ", ".join(map(str, reversed(order)))
    assert kendall_tau(reversed_order, truth) == -1.0
    shuffled = data.draw(st.permutations(order))
    answer = ", ".join(map(str, shuffled))
    for value in (kendall_tau(answer, truth), spearman_rho(answer, truth)):
        assert -1.0 - 1e-12 <= value <= 1.0 + 1e-12
    assert 0.0 <= positional_accuracy(answer, truth) <= 1.0
