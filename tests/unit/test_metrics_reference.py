"""Every metric against hand-computed values, including the known traps of the references."""

from __future__ import annotations

import json
import math

import jiwer
import pandas as pd
import pytest
import sacrebleu

from vlmhyperbench.metrics.classification import (
    _confusion,
    accuracy,
    macro_f1,
    macro_precision,
    macro_recall,
    weighted_f1,
    weighted_recall,
)
from vlmhyperbench.metrics.extraction import (
    field_accuracy,
    field_exact_match,
    field_f1,
    json_validity,
    key_jaccard,
    parse_object,
)
from vlmhyperbench.metrics.ngram import bleu, chrf
from vlmhyperbench.metrics.ordering import kendall_tau, positional_accuracy, spearman_rho
from vlmhyperbench.metrics.performance import error_rate, latency_ms, tokens_per_s
from vlmhyperbench.metrics.text import anls, cer, exact_match, token_f1, wer
from vlmhyperbench.metrics.vqa import process_punctuation, relaxed_accuracy, vqa_accuracy

# --- VQA accuracy (official VQAv2 script) ------------------------------------------------------


def test_vqa_trailing_period_against_ten_identical_answers() -> None:
    # The prediction's period is stripped (official, lmms-eval): every leave-one-out set
    # has 9 matches ≥ 3.
    assert vqa_accuracy("2.", ["2"] * 10) == 1.0


def test_vqa_number_words_and_articles() -> None:
    assert vqa_accuracy("Two.", ["2"] * 10) == 1.0
    assert vqa_accuracy("the two", ["2"] * 10) == 1.0
    assert vqa_accuracy("A dog", ["dog"] * 10) == 1.0
    assert vqa_accuracy("none", ["0"] * 10) == 1.0
    assert vqa_accuracy("dont", ["don't"] * 10) == 1.0  # contraction map


def test_vqa_identical_references_are_not_processed() -> None:
    # Official: ten identical references are compared as written, so "Two" never equals the
    # processed prediction "2"; VLMEvalKit processes both sides and scores 1.
    assert vqa_accuracy("two", ["Two"] * 10) == 0.0
    assert vqa_accuracy("two", ["Two"] * 10, process_references=True) == 1.0


def test_vqa_leave_one_out_by_hand() -> None:
    # 3 "cat", 7 "dog", prediction "cat": a "cat" answer left out leaves 2 matches (2/3),
    # a "dog" left out leaves 3 (1): (3·2/3 + 7·1) / 10.
    assert vqa_accuracy("the cat", ["cat"] * 3 + ["dog"] * 7) == pytest.approx(0.9)
    # One match among ten: (9 · 1/3 + 1 · 0) / 10.
    assert vqa_accuracy("cat", ["cat"] + ["dog"] * 9) == pytest.approx(0.3)
    assert vqa_accuracy("bird", ["cat"] + ["dog"] * 9) == 0.0


def test_vqa_references_with_punctuation_are_processed_when_they_differ() -> None:
    refs = ["yes!"] * 5 + ["no"] * 5
    # "yes!" → "yes " (the mark does not touch a space): only an exact "yes " matches.
    assert process_punctuation("yes!") == "yes "
    assert vqa_accuracy("yes", refs) == 0.0
    assert vqa_accuracy("no", refs) == 1.0


def test_vqa_fewer_than_ten_references() -> None:
    assert vqa_accuracy("Yes", ["yes"]) == 1.0
    assert vqa_accuracy("Yes.", ["Yes"]) == 0.0  # a single reference is not processed
    # Two references, threshold min(3, 1) = 1: leaving out "red" leaves no match.
    assert vqa_accuracy("red", ["red", "blue"]) == 0.5


def test_vqa_period_strip_count_quirk() -> None:
    # The script passes re.UNICODE (32) as sub()'s count: only 32 periods are removed.
    assert process_punctuation("." * 40) == "." * 8
    assert process_punctuation("1,000.5 kg.") == "1000.5 kg"


# --- ANLS (RRC DocVQA) -------------------------------------------------------------------------


def test_anls_exactly_at_the_boundary_is_kept() -> None:
    # Levenshtein 1 over max length 2: NL = 0.5, score 0.5 is not below the threshold.
    assert anls("ab", ["a"]) == 0.5
    # 6/11 edits: score 5/11 < 0.5 → 0; 5/11 edits: score 6/11 survives.
    assert anls("abcdefghijk", ["abcdeXXXXXX"]) == 0.0
    assert anls("abcdefghijk", ["abcdefXXXXX"]) == pytest.approx(6 / 11)


def test_anls_several_references_take_the_minimum_distance() -> None:
    # Not the mean over references (lmms-eval #363): the exact reference wins.
    assert anls("abcd", ["abcd", "wxyz"]) == 1.0
    assert anls("Иванов", ["Петров", "Иванова"]) == pytest.approx(6 / 7)


def test_anls_length_of_the_raw_strings() -> None:
    # Official: distance of the normalised strings over the raw (unstripped) lengths:
    # "ab" vs "a" is 1 edit; lengths 4 and 1 → NL 0.25 (VLMEvalKit's normalised lengths: 0.5).
    assert anls("ab  ", ["a"]) == pytest.approx(0.75)
    assert anls("  ИВАНОВ   Иван \n", ["иванов иван"]) == 1.0
    # Quirk kept: an empty answer against a whitespace-padded reference.
    assert anls("", ["a   "]) == pytest.approx(0.75)
    assert anls("", ["abc"]) == 0.0
    assert anls("", [""]) == 1.0


# --- relaxed accuracy (ChartQA) ----------------------------------------------------------------


def test_relaxed_accuracy_numbers_and_strings() -> None:
    assert relaxed_accuracy("10.4", ["10"]) == 1.0  # 4% off
    assert relaxed_accuracy("10.6", ["10"]) == 0.0  # 6% off
    assert relaxed_accuracy("9.5", ["10"]) == 1.0  # exactly 5%
    assert relaxed_accuracy("50%", ["0.5"]) == 1.0
    assert relaxed_accuracy(" 12 ", ["12"]) == 1.0
    assert relaxed_accuracy("Yes", ["yes"]) == 1.0
    # A zero target falls back to string equality; "1,000" is not a float.
    assert relaxed_accuracy("0", ["0"]) == 1.0
    assert relaxed_accuracy("0.0", ["0"]) == 0.0
    assert relaxed_accuracy("1,000", ["1000"]) == 0.0
    assert relaxed_accuracy("7", ["3", "7.2"]) == 1.0


# --- exact match -------------------------------------------------------------------------------


def test_exact_match_cyrillic_case_and_yo() -> None:
    assert exact_match("ИВАНОВ", ["иванов"]) == 1.0
    assert exact_match("ЁЛКИН", ["Елкин"]) == 1.0  # folded to ё, then ё → е
    assert exact_match("ЁЛКИН", ["Елкин"], normalize_yo=False) == 0.0
    assert exact_match("ИВАНОВ", ["иванов"], case_sensitive=True) == 0.0


def test_exact_match_whitespace_punctuation_nfkc() -> None:
    assert exact_match("  Иван   Иванов ", ["Иван Иванов"]) == 1.0
    assert exact_match("Иван  Иванов", ["Иван Иванов"], collapse_spaces=False) == 0.0
    assert exact_match("Москва.", ["Москва"]) == 1.0
    assert exact_match("Москва.", ["Москва"], strip_punctuation=False) == 0.0
    assert exact_match("１２３", ["123"]) == 1.0
    assert exact_match("１２３", ["123"], nfkc=False) == 0.0
    assert exact_match("", ["123"]) == 0.0


# --- CER / WER -----------------------------------------------------------------------------------


def test_empty_prediction_is_never_perfect() -> None:
    # HELM returns 0 (perfect) for an empty prediction; every deletion counts here.
    assert cer("", ["Иванов"]) == 1.0
    assert wer("", ["улица Ленина"]) == 1.0
    assert cer("", [""]) == 0.0


def test_cer_by_hand_and_against_jiwer() -> None:
    assert cer("Иваноф", ["Иванов"]) == pytest.approx(1 / 6)
    assert cer("абвгдеж", ["а"], clip=False) == pytest.approx(6.0)
    # With collapse_spaces off the rate equals jiwer's default CER (only stripped).
    assert cer("a  b", ["a b"], collapse_spaces=False) == pytest.approx(jiwer.cer("a b", "a  b"))
    assert cer("a  b", ["a b"]) == 0.0


def test_wer_by_hand() -> None:
    assert wer("улица Ленина дом 5", ["улица Ленина дом 7"]) == pytest.approx(1 / 4)
    assert wer("улица  Ленина", ["улица Ленина"]) == 0.0


def test_corpus_error_rate_differs_from_the_mean() -> None:
    from vlmhyperbench.metrics.base import extras_of
    from vlmhyperbench.metrics.text import corpus_error_rate

    pairs = [("абв", ["абвгде"]), ("x", ["ab"])]
    assert [cer(p, r, clip=False) for p, r in pairs] == pytest.approx([0.5, 1.0])  # mean 0.75
    frame = pd.DataFrame([extras_of(cer).row_columns(p, r) for p, r in pairs])
    assert corpus_error_rate(frame) == pytest.approx(5 / 8)  # (3 + 2) / (6 + 2)


# --- BLEU / chrF -------------------------------------------------------------------------------


def test_bleu_argument_order() -> None:
    # Hypothesis = prediction: all n-gram precisions are 1, brevity penalty exp(1 − 8/4).
    assert bleu("a b c d", ["a b c d e f g h"]) == pytest.approx(100 * math.exp(-1))
    # Swapped (the original VLMHyperBench): precisions 4/8, 3/7, 2/6, 1/5, no penalty.
    swapped = 100 * (0.5 * 3 / 7 * 1 / 3 * 0.2) ** 0.25
    assert bleu("a b c d e f g h", ["a b c d"]) == pytest.approx(swapped)


def test_chrf_order_and_extremes() -> None:
    hyp, ref = "кот сидел на ковре", "кот сидит на ковре у окна"
    assert chrf(hyp, [ref]) == pytest.approx(sacrebleu.sentence_chrf(hyp, [ref]).score)
    assert chrf(hyp, [ref]) != pytest.approx(sacrebleu.sentence_chrf(ref, [hyp]).score)
    assert chrf("abc", ["abc"]) == 100.0
    assert chrf("xyz", ["abc"]) == 0.0


# --- token F1 ------------------------------------------------------------------------------------


def test_token_f1_by_hand() -> None:
    # [cat, sat] vs [cat, sat, down]: P = 1, R = 2/3, F1 = 0.8.
    assert token_f1("The cat sat.", ["a cat sat down"]) == pytest.approx(0.8)
    assert token_f1("", [""]) == 1.0
    assert token_f1("", ["кот"]) == 0.0
    assert token_f1("Ёж", ["еж"]) == 1.0


# --- classification ----------------------------------------------------------------------------

LABELS = ["passport", "snils", "invoice"]
SYNONYMS = {"passport": ["паспорт"], "snils": ["снилс"], "invoice": ["счёт", "счет-фактура"]}


def test_classification_answer_with_extra_words() -> None:
    options = {"labels": LABELS, "synonyms": SYNONYMS}
    assert accuracy("Это паспорт, конечно.", ["passport"], **options) == 1.0
    assert accuracy("Думаю, что это счет-фактура", ["invoice"], **options) == 1.0
    assert accuracy("паспорт или СНИЛС", ["passport"], **options) == 0.0  # ambiguous


def _labels_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pred_label": ["a", "a", "b", "b", None, "c"],
            "true_label": ["a", "a", "a", "b", "b", "c"],
        }
    )


def test_averaged_f1_precision_recall_by_hand() -> None:
    frame, labels = _labels_frame(), ["a", "b", "c"]
    # F1 per class: a 4/5, b 2/4, c 1; supports 3, 2, 1.
    assert macro_f1(frame, labels=labels) == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert weighted_f1(frame, labels=labels) == pytest.approx((3 * 0.8 + 2 * 0.5 + 1) / 6)
    # Precision a 2/2, b 1/2, c 1; recall a 2/3, b 1/2, c 1.
    assert macro_precision(frame, labels=labels) == pytest.approx(2.5 / 3)
    assert macro_recall(frame, labels=labels) == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert weighted_recall(frame, labels=labels) == pytest.approx(4 / 6)


def test_confusion_matrix_by_hand() -> None:
    matrix = _confusion(_labels_frame(), labels=["a", "b", "c"])["confusion_matrix"]
    assert matrix["predicted"] == ["a", "b", "c", "(no label)"]
    assert matrix["matrix"] == [[2, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]


# --- extraction ----------------------------------------------------------------------------------

REFERENCE = json.dumps({"ФИО": "Иванов Иван", "Дата": "01.02.1990", "Номер": "123"})
ANSWER = '```json\n{"ФИО": "ИВАНОВ ИВАН", "Дата": "01.02.1991", "Лишнее": "x"}\n```'


def test_json_validity_and_key_jaccard() -> None:
    assert json_validity(ANSWER, [REFERENCE]) == 1.0
    assert json_validity(ANSWER, [REFERENCE], extract="strict") == 0.0
    assert json_validity("не знаю", [REFERENCE]) == 0.0
    assert json_validity("[1, 2]", [REFERENCE]) == 0.0  # not an object
    # {ФИО, Дата, Лишнее} vs {ФИО, Дата, Номер}: 2 shared of 4.
    assert key_jaccard(ANSWER, [REFERENCE]) == 0.5
    assert parse_object('Ответ: {"a": 1} спасибо', "first_object") == {"a": 1}


def test_field_exact_match_and_accuracy_per_field() -> None:
    assert field_exact_match(ANSWER, [REFERENCE]) == {"ФИО": 1.0, "Дата": 0.0, "Номер": 0.0}
    # CER ≤ 0.15: ФИО differs in 9 of 11 characters by case; Дата 1 of 10.
    assert field_accuracy(ANSWER, [REFERENCE]) == {"ФИО": 0.0, "Дата": 1.0, "Номер": 0.0}
    lowered = field_accuracy(ANSWER, [REFERENCE], lowercase=True)
    assert lowered == {"ФИО": 1.0, "Дата": 1.0, "Номер": 0.0}
    assert field_accuracy("не JSON", [REFERENCE]) == {"ФИО": 0.0, "Дата": 0.0, "Номер": 0.0}


def test_field_f1_by_hand() -> None:
    # TP ФИО; FP Дата (wrong value) and Лишнее; FN Дата and Номер: 2 / (2 + 2 + 2).
    assert field_f1(ANSWER, [REFERENCE]) == pytest.approx(1 / 3)
    assert field_f1("не JSON", [REFERENCE]) == 0.0
    assert field_f1(REFERENCE, [REFERENCE]) == 1.0


def test_field_json_wrapper_is_unwrapped() -> None:
    reference = json.dumps({"fields": {"Номер": {"value": "123", "bboxes": []}}})
    assert field_exact_match('{"Номер": "123"}', [reference]) == {"Номер": 1.0}


# --- ordering ------------------------------------------------------------------------------------


def test_ordering_perfect_reversed_partial() -> None:
    truth = ["[2, 3, 1]"]
    assert (kendall_tau("2, 3, 1", truth), spearman_rho("2, 3, 1", truth)) == (1.0, 1.0)
    assert positional_accuracy("2, 3, 1", truth) == 1.0
    assert kendall_tau("1, 3, 2", truth) == pytest.approx(-1.0)
    assert spearman_rho("1, 3, 2", truth) == pytest.approx(-1.0)
    assert positional_accuracy("1, 3, 2", truth) == pytest.approx(1 / 3)
    # "2, 1": page 3 missing → tied last. Pairs: 2 concordant, 1 discordant → τ = 1/3;
    # rank differences 0, 1, −1 → ρ = 1 − 6·2 / (3·8) = 0.5.
    assert kendall_tau("2, 1", truth) == pytest.approx(1 / 3)
    assert spearman_rho("2, 1", truth) == pytest.approx(0.5)
    assert positional_accuracy("2, 1", truth) == pytest.approx(1 / 3)


def test_ordering_ties_and_failures() -> None:
    truth = ["[2, 3, 1]"]
    # Only "2" found: y = [0, 1, 1]; 2 concordant pairs, one tied in y → τ-b = 2 / √(3·2).
    assert kendall_tau("2", truth) == pytest.approx(2 / math.sqrt(6))
    assert kendall_tau("", truth) == 0.0 and spearman_rho("", truth) == 0.0
    assert positional_accuracy("", truth) == 0.0
    assert kendall_tau("Порядок: [2, 3, 1].", truth) == 1.0  # a JSON list inside prose
    assert math.isnan(kendall_tau("1", ["[1]"]))


# --- performance ---------------------------------------------------------------------------------


def _sample(performance: dict | None, error: str | None = None) -> dict:
    return {"record": {"performance": performance}, "error": error}


def test_performance_values() -> None:
    ok = _sample({"latency_ms": 500.0, "completion_tokens": 20})
    assert latency_ms("", [], sample=ok) == 500.0
    assert tokens_per_s("", [], sample=ok) == pytest.approx(40.0)  # 20 tokens in 0.5 s
    failed = _sample({"latency_ms": 900.0}, error="timeout")
    assert math.isnan(latency_ms("", [], sample=failed))
    assert error_rate("", [], sample=failed) == 1.0 and error_rate("", [], sample=ok) == 0.0
    assert error_rate("", [], sample=None) == 1.0  # no line at all
