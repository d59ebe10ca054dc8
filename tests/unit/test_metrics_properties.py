"""Invariants (hypothesis): ranges, identity, symmetry, and batch == one-by-one."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmhyperbench.metrics.fast import normalize_many, normalize_one
from vlmhyperbench.metrics.ngram import bleu, chrf
from vlmhyperbench.metrics.ordering import kendall_tau, positional_accuracy, spearman_rho
from vlmhyperbench.metrics.text import anls, cer, exact_match, token_f1, wer
from vlmhyperbench.metrics.vqa import relaxed_accuracy, vqa_accuracy

# Text that exercises the fast path's special cases: Cyrillic, ё and its decomposed form,
# ß (two-letter case fold), Σ, full-width forms, non-BMP letters, punctuation, odd spaces.
TRICKY = "аЁёеЕ\u0308ßΣσςİ１Ａ﹖«»—–…№\u00a0\u2009\u3000\t\n\x1c\x85 .,!?-😀𐐀\x00"
texts = st.text(alphabet=st.sampled_from(TRICKY) | st.characters(), max_size=24)
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


@settings(max_examples=300, deadline=None)
@given(strings=st.lists(texts, max_size=8), opts=options)
def test_normalize_many_equals_one_by_one(strings: list[str], opts: dict) -> None:
    assert normalize_many(strings, **opts) == [normalize_one(s, **opts) for s in strings]


@settings(max_examples=150, deadline=None)
@given(predictions=st.lists(texts, min_size=1, max_size=6), data=st.data())
def test_batch_equals_one_by_one(predictions: list[str], data: st.DataObject) -> None:
    references = [data.draw(reference_lists) for _ in predictions]
    for metric in (exact_match, anls, cer, wer):
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
