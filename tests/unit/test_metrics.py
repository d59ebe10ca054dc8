"""Per-sample metrics, label normalisation, macro F1 and the metric loader."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmhyperbench.metrics.aggregate import aggregate
from vlmhyperbench.metrics.base import ColumnSums, MetricExtras, extras_of, metric
from vlmhyperbench.metrics.classification import (
    accuracy,
    label_columns,
    macro_f1,
    normalize_label,
)
from vlmhyperbench.metrics.loader import MetricLoadError, load_metric
from vlmhyperbench.metrics.normalize import normalize_text
from vlmhyperbench.metrics.text import anls, cer, exact_match, wer

# --- normalisation ---------------------------------------------------------------------------


def test_normalize_text_options() -> None:
    text = "  ЁЛКА,\tПалка!  "
    assert normalize_text(text) == "ёлка, палка!"
    assert normalize_text(text, strip_punctuation=True, normalize_yo=True) == "елка палка"
    assert normalize_text(text, case=None, collapse_spaces=False) == text
    assert normalize_text("１２３") == "123"  # NFKC folds full-width digits
    assert normalize_text("е\u0308", nfkc=False, normalize_yo=True) == "е"  # decomposed ё


# --- ANLS ------------------------------------------------------------------------------------


def test_anls_exact_match_is_one() -> None:
    assert anls("Иванов Иван", ["Иванов Иван"]) == 1.0


def test_anls_half_distance_is_kept() -> None:
    # Levenshtein 1 over max length 2: NL == 0.5 exactly, and the official script keeps it.
    assert anls("ab", ["a"]) == 0.5


def test_anls_just_above_half_distance_is_zeroed() -> None:
    # 6 substitutions over 11 characters: NL = 6/11 > 0.5, similarity 5/11 < 0.5.
    assert anls("abcdefghijk", ["abcdeXXXXXX"]) == 0.0
    # 5 substitutions over 11: similarity 6/11 survives.
    assert anls("abcdefghijk", ["abcdefXXXXX"]) == pytest.approx(6 / 11)


def test_anls_takes_best_reference() -> None:
    assert anls("москва", ["Санкт-Петербург", "Москва"]) == 1.0
    # "Иванов" vs "Иванова": one insertion over 7 characters.
    assert anls("Иванов", ["Петров", "Иванова"]) == pytest.approx(6 / 7)


def test_anls_ignores_case_and_whitespace() -> None:
    assert anls("  ИВАНОВ   Иван \n", ["иванов иван"]) == 1.0


def test_anls_threshold_param() -> None:
    assert anls("ab", ["a"], threshold=0.6) == 0.0
    assert anls("abc", ["a"], threshold=0.0) == pytest.approx(1 / 3)


def test_anls_empty_strings() -> None:
    assert anls("", ["abc"]) == 0.0
    assert anls("", [""]) == 1.0


def test_references_required() -> None:
    with pytest.raises(ValueError, match="reference"):
        anls("a", [])
    with pytest.raises(TypeError):
        anls("a", "a")  # type: ignore[arg-type]


# --- CER / WER -------------------------------------------------------------------------------


def test_cer_empty_prediction_is_one() -> None:
    assert cer("", ["Иванов"]) == 1.0
    assert cer("   ", ["Иванов"], clip=False) == 1.0


def test_cer_cyrillic_by_hand() -> None:
    # One substitution (в→ф) in a six-letter reference.
    assert cer("Иваноф", ["Иванов"]) == pytest.approx(1 / 6)
    # One deletion and one substitution: 2 edits over 6.
    assert cer("Ивнуов", ["Иванов"]) == pytest.approx(2 / 6)
    # Best of several references.
    assert cer("Петров", ["Петрова", "Петров"]) == 0.0
    assert cer("Петров", ["Петрова", "Петровых"]) == pytest.approx(1 / 7)


def test_cer_clip_and_case() -> None:
    # Six insertions over a one-character reference.
    assert cer("абвгдеж", ["а"]) == 1.0
    assert cer("абвгдеж", ["а"], clip=False) == pytest.approx(6.0)
    # Case matters by default: 5 of 6 letters differ.
    assert cer("ИВАНОВ", ["Иванов"]) == pytest.approx(5 / 6)
    assert cer("ИВАНОВ", ["Иванов"], lowercase=True) == 0.0


def test_wer_by_hand() -> None:
    assert wer("улица Ленина дом 5", ["улица Ленина дом 7"]) == pytest.approx(1 / 4)
    assert wer("", ["улица Ленина"]) == 1.0


# --- exact match -----------------------------------------------------------------------------


def test_exact_match_yo() -> None:
    assert exact_match("Ёлкин", ["Елкин"]) == 1.0
    assert exact_match("Ёлкин", ["Елкин"], normalize_yo=False) == 0.0


def test_exact_match_cyrillic_case_folding() -> None:
    assert exact_match("ИВАНОВ", ["Иванов"]) == 1.0
    assert exact_match("ИВАНОВ", ["Иванов"], case_sensitive=True) == 0.0


def test_exact_match_punctuation_and_references() -> None:
    assert exact_match("Москва.", ["Москва"]) == 1.0
    assert exact_match("Москва.", ["Москва"], strip_punctuation=False) == 0.0
    assert exact_match("Казань", ["Москва", "казань"]) == 1.0
    assert exact_match("Казань", ["Москва"]) == 0.0
    assert exact_match("１２３", ["123"]) == 1.0
    assert exact_match("", ["123"]) == 0.0


# --- classification --------------------------------------------------------------------------

LABELS = ["passport", "snils", "driver_license"]
SYNONYMS = {"passport": ["паспорт"], "snils": ["СНИЛС"], "driver_license": ["права"]}


def test_normalize_label_free_text() -> None:
    assert normalize_label("Это паспорт.", LABELS, SYNONYMS) == "passport"
    assert normalize_label("PASSPORT", LABELS) == "passport"
    assert normalize_label("driver license", LABELS) == "driver_license"
    assert normalize_label("Водительские права", LABELS, SYNONYMS) == "driver_license"


def test_normalize_label_rejects_ambiguous_and_partial_words() -> None:
    assert normalize_label("паспорт или СНИЛС", LABELS, SYNONYMS) is None
    assert normalize_label("паспортный стол", LABELS, SYNONYMS) is None
    assert normalize_label("не знаю", LABELS, SYNONYMS) is None
    assert normalize_label("", LABELS, SYNONYMS) is None
    assert normalize_label(None, LABELS, SYNONYMS) is None


def test_normalize_label_prefers_longer_nested_label() -> None:
    labels = ["passport", "foreign passport"]
    assert normalize_label("It is a foreign passport", labels) == "foreign passport"
    assert normalize_label("It is a passport", labels) == "passport"


def test_normalize_label_unknown_synonym_key() -> None:
    with pytest.raises(ValueError, match="unknown labels"):
        normalize_label("x", LABELS, {"pasport": ["паспорт"]})


def test_accuracy() -> None:
    assert accuracy("Это паспорт.", ["passport"], labels=LABELS, synonyms=SYNONYMS) == 1.0
    assert accuracy("паспорт или СНИЛС", ["passport"], labels=LABELS, synonyms=SYNONYMS) == 0.0
    assert accuracy("СНИЛС", ["passport"], labels=LABELS, synonyms=SYNONYMS) == 0.0
    assert accuracy("", ["passport"], labels=LABELS, synonyms=SYNONYMS) == 0.0
    with pytest.raises(ValueError, match="maps to one of the labels"):
        accuracy("passport", ["diploma"], labels=LABELS)


def test_macro_f1_by_hand() -> None:
    # a: TP 2, FP 0, FN 1 → 4/5;  b: TP 1, FP 1, FN 1 → 2/4;  c: TP 1 → 1.
    frame = pd.DataFrame(
        {
            "pred_label": ["a", "a", "b", "b", None, "c"],
            "true_label": ["a", "a", "a", "b", "b", "c"],
        }
    )
    expected = (0.8 + 0.5 + 1.0) / 3
    assert macro_f1(frame, labels=["a", "b", "c"]) == pytest.approx(expected)


def test_macro_f1_from_text_columns_and_errors() -> None:
    frame = pd.DataFrame(
        {
            "prediction": ["Это a", "a", "b", "b", "b", "c"],
            "reference": ["a", "a", "a", "b", "b", "c"],
            # The errored row counts as no prediction even though text was returned.
            "error": [None, None, None, None, "timeout", None],
        }
    )
    assert macro_f1(frame, labels=["a", "b", "c"]) == pytest.approx((0.8 + 0.5 + 1.0) / 3)


def test_macro_f1_predicted_class_absent_from_truth() -> None:
    # a: F1 1;  b: FN only → 0;  c: FP only → 0.
    frame = pd.DataFrame({"pred_label": ["a", "c"], "true_label": ["a", "b"]})
    assert macro_f1(frame, labels=["a", "b", "c"]) == pytest.approx(1 / 3)


# --- loader ----------------------------------------------------------------------------------


def test_load_metric_resolves_paths() -> None:
    metric = load_metric("vlmhyperbench.metrics.text:anls")
    assert metric.score is anls
    assert metric.aggregate is None
    assert metric.bind({})("ab", ["a"]) == 0.5
    frame = pd.DataFrame({"id": ["s1", "s2", "s3"], "value": [1.0, 0.0, 0.5]})
    assert aggregate(frame, method=metric.aggregation({}), n_boot=0)["overall"]["value"] == 0.5

    clf = load_metric(
        "vlmhyperbench.metrics.classification:accuracy",
        "vlmhyperbench.metrics.classification:macro_f1",
    )
    assert clf.aggregate is macro_f1
    assert clf.row_columns is label_columns


# --- the metric contract: plain functions and declared extras ---------------------------------


def _plain_length_ratio(prediction: str, references: Sequence[str], *, cap: float = 2.0) -> float:
    """A plugin-style metric: a plain function, no decorator."""
    return min(cap, len(prediction) / max(len(references[0]), 1))


def _plain_median(frame: pd.DataFrame) -> float:
    return float(frame["value"].median())


def _hits(prediction: str, references: Sequence[str], *, casefold: bool = False) -> dict[str, int]:
    text = prediction.casefold() if casefold else prediction
    return {"hits": int(text in references), "tries": 1}


@metric(row_columns=_hits)
def _declared_hit(prediction: str, references: Sequence[str], *, casefold: bool = False) -> float:
    return float(_hits(prediction, references, casefold=casefold)["hits"])


def _hit_stats(frame: pd.DataFrame) -> np.ndarray:
    return frame[["hits", "tries"]].to_numpy(dtype=float)


def _hit_rate(sums: np.ndarray, *, scale: float = 1.0) -> np.ndarray:
    return scale * sums[..., 0] / sums[..., 1]


def _hit_details(frame: pd.DataFrame, *, scale: float = 1.0) -> dict[str, float]:
    return {"total_hits": scale * float(frame["hits"].sum())}


@metric(corpus=ColumnSums(row_stats=_hit_stats, from_sums=_hit_rate), details=_hit_details)
def _declared_hit_rate(frame: pd.DataFrame, *, scale: float = 1.0) -> float:
    return float(_hit_rate(_hit_stats(frame).sum(axis=0), scale=scale))


def test_a_plain_function_is_a_complete_metric() -> None:
    plain = load_metric(f"{__name__}:_plain_length_ratio", f"{__name__}:_plain_median")
    assert extras_of(plain.score) == MetricExtras() == extras_of(plain.aggregate)
    assert plain.row_columns is None and plain.details is None
    assert plain.bind({"cap": 1.5})("abcd", ["ab"]) == 1.5
    assert plain.unknown_params({"cap": 1.5, "cpa": 1}) == ["cpa"]
    method = plain.aggregation({})
    assert method.frame_fn is not None and method.row_stats is None and method.statistic is None
    frame = pd.DataFrame({"id": ["a", "b", "c"], "value": [0.0, 1.0, 5.0]})
    assert aggregate(frame, method=method, n_boot=0)["overall"]["value"] == 1.0


def test_declared_extras_are_read_through_the_contract() -> None:
    assert extras_of(_declared_hit) == MetricExtras(row_columns=_hits)
    assert _declared_hit("A", ["a"], casefold=True) == 1.0  # the function itself is unchanged
    declared = load_metric(f"{__name__}:_declared_hit", f"{__name__}:_declared_hit_rate")
    assert declared.row_columns is _hits and declared.details is _hit_details
    # Each extra's parameters are known parameters of the metric (no typo error for them).
    assert declared.unknown_params({"casefold": True, "scale": 2.0, "scael": 1}) == ["scael"]
    method = declared.aggregation({"scale": 100.0})
    assert method.frame_fn is None and method.row_stats is not None
    frame = pd.DataFrame({"id": list("abcd"), "value": 0.0, "hits": [1, 0, 1, 1], "tries": 1})
    assert aggregate(frame, method=method, n_boot=0)["overall"]["value"] == 75.0


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("vlmhyperbench.metrics.text:no_such_metric", "has no attribute 'no_such_metric'"),
        ("vlmhyperbench.metrics.no_such_module:anls", "cannot import module"),
        ("vlmhyperbench.metrics.text.anls", "module:name"),
        ("vlmhyperbench.metrics.scoring:MISSING_PREDICTION", "not callable"),
    ],
)
def test_load_metric_errors_name_the_path(path: str, message: str) -> None:
    with pytest.raises(MetricLoadError, match=message) as info:
        load_metric(path)
    assert path in str(info.value)


def test_load_metric_bad_aggregate_path() -> None:
    with pytest.raises(MetricLoadError, match="no_such_aggregate"):
        load_metric(
            "vlmhyperbench.metrics.text:anls", "vlmhyperbench.metrics.text:no_such_aggregate"
        )


# --- properties ------------------------------------------------------------------------------

texts = st.text(max_size=40)
reference_lists = st.lists(texts, min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(prediction=texts, references=reference_lists)
def test_scores_are_in_unit_interval(prediction: str, references: list[str]) -> None:
    for value in (
        anls(prediction, references),
        exact_match(prediction, references),
        cer(prediction, references),
        wer(prediction, references),
    ):
        assert 0.0 <= value <= 1.0
        assert not math.isnan(value)


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=40))
def test_identical_strings_score_perfectly(text: str) -> None:
    assert anls(text, [text]) == 1.0
    assert exact_match(text, [text]) == 1.0
    assert cer(text, [text]) == 0.0


@settings(max_examples=200, deadline=None)
@given(a=texts, b=texts)
def test_anls_symmetric_single_reference(a: str, b: str) -> None:
    assert anls(a, [b]) == anls(b, [a])
