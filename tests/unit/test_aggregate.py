"""Group-wise aggregation and seeded bootstrap intervals."""

from __future__ import annotations

import pandas as pd
import pytest

from vlmhyperbench.metrics.aggregate import aggregate
from vlmhyperbench.metrics.classification import macro_f1


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"s{i}" for i in range(7)],
            "value": [1.0, 0.0, 1.0, 1.0, 0.5, 0.0, 1.0],
            "doc_class": ["passport", "passport", "passport", "snils", "snils", "snils", "inn"],
            "question_type": ["field", "field", None, "field", "classify", None, None],
            "subset": [None] * 7,
        }
    )


def test_overall_and_groups_by_hand() -> None:
    result = aggregate(_frame(), n_boot=200, seed=1)
    assert result["overall"]["value"] == pytest.approx(4.5 / 7)
    assert result["overall"]["n"] == 7

    doc_class = result["groups"]["doc_class"]
    assert list(doc_class) == ["inn", "passport", "snils"]
    assert doc_class["passport"]["value"] == pytest.approx(2 / 3)
    assert doc_class["passport"]["n"] == 3
    assert doc_class["snils"]["value"] == pytest.approx(0.5)

    # Null group values are left out of that grouping only.
    question_type = result["groups"]["question_type"]
    assert question_type["field"]["n"] == 3
    assert question_type["field"]["value"] == pytest.approx(2 / 3)
    assert question_type["classify"]["n"] == 1
    # An all-null column is omitted.
    assert "subset" not in result["groups"]


def test_single_sample_group_has_degenerate_interval() -> None:
    inn = aggregate(_frame(), n_boot=200)["groups"]["doc_class"]["inn"]
    assert inn == {
        "value": 1.0,
        "ci_low": 1.0,
        "ci_high": 1.0,
        "n": 1,
        "n_samples": 1,
        "n_errors": 0,
        "error_rate": 0.0,
    }


def test_constant_group_interval_equals_value() -> None:
    frame = pd.DataFrame({"value": [0.1, 0.1, 0.1], "doc_class": ["a", "a", "a"]})
    overall = aggregate(frame)["overall"]
    assert overall["ci_low"] == overall["ci_high"] == overall["value"] == pytest.approx(0.1)


def test_bootstrap_is_seeded_and_contains_value() -> None:
    frame = pd.DataFrame({"value": [float(i % 3 == 0) for i in range(60)]})
    first = aggregate(frame, n_boot=500, seed=7)["overall"]
    again = aggregate(frame, n_boot=500, seed=7)["overall"]
    other = aggregate(frame, n_boot=500, seed=8)["overall"]
    assert first == again
    assert (first["ci_low"], first["ci_high"]) != (other["ci_low"], other["ci_high"])
    assert first["ci_low"] < first["value"] < first["ci_high"]
    assert first["value"] == pytest.approx(20 / 60)
    # A 95% interval for a proportion of 1/3 over 60 samples is roughly ±0.12.
    assert 0.15 < first["ci_low"] < 0.30
    assert 0.37 < first["ci_high"] < 0.50


def test_two_point_bootstrap_spans_both_values() -> None:
    # Resampled means of [0, 1] are 0, 0.5 or 1, each extreme with probability 1/4.
    result = aggregate(pd.DataFrame({"value": [0.0, 1.0]}), n_boot=1000)["overall"]
    assert {k: result[k] for k in ("value", "ci_low", "ci_high", "n")} == {
        "value": 0.5,
        "ci_low": 0.0,
        "ci_high": 1.0,
        "n": 2,
    }


def test_group_interval_does_not_depend_on_other_groups() -> None:
    full = aggregate(_frame(), n_boot=300, seed=3)["groups"]["doc_class"]["passport"]
    alone = _frame()[lambda f: f["doc_class"] == "passport"]
    only = aggregate(alone, n_boot=300, seed=3)["groups"]["doc_class"]["passport"]
    assert full == only


def test_custom_corpus_aggregate_is_bootstrapped_over_rows() -> None:
    frame = pd.DataFrame(
        {
            "value": [1.0, 1.0, 0.0, 1.0, 0.0, 1.0],
            "pred_label": ["a", "a", "b", "b", None, "c"],
            "true_label": ["a", "a", "a", "b", "b", "c"],
            "doc_class": ["x", "x", "x", "y", "y", "y"],
        }
    )

    def value_fn(rows: pd.DataFrame) -> float:
        return macro_f1(rows, labels=["a", "b", "c"])

    result = aggregate(frame, value_fn=value_fn, n_boot=300, seed=0)
    assert result["overall"]["value"] == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert result["overall"]["ci_low"] <= result["overall"]["ci_high"]
    assert result == aggregate(frame, value_fn=value_fn, n_boot=300, seed=0)
    # Group x: a has TP 2, FN 1 → 0.8; b is only predicted → 0.
    assert result["groups"]["doc_class"]["x"]["value"] == pytest.approx(0.4)


def test_without_bootstrap_and_empty_frame() -> None:
    result = aggregate(_frame(), n_boot=0)["overall"]
    assert result["ci_low"] is None and result["ci_high"] is None
    empty = aggregate(pd.DataFrame({"value": [], "doc_class": []}))
    assert empty["groups"] == {}
    assert empty["overall"]["value"] is None and empty["overall"]["n"] == 0


def test_rejects_bad_ci() -> None:
    with pytest.raises(ValueError, match="ci"):
        aggregate(_frame(), ci=95)


def test_rows_of_one_document_are_resampled_together() -> None:
    from vlmhyperbench.metrics.aggregate import _ids

    # Two documents with 4 field rows each; the bootstrap resamples documents, so every
    # resampled mean is a mix of the two document means (1.0 and 0.25), i.e. 1, 0.625 or 0.25.
    frame = pd.DataFrame(
        {
            "id": ["a"] * 4 + ["b"] * 4,
            "value": [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
            "field": ["f1", "f2", "f3", "f4"] * 2,
        }
    )
    assert len(set(_ids(frame))) == 2
    result = aggregate(frame, n_boot=500, seed=0)
    overall = result["overall"]
    assert overall["value"] == pytest.approx(5 / 8)
    assert overall["n"] == 8 and overall["n_samples"] == 2
    assert (overall["ci_low"], overall["ci_high"]) == (0.25, 1.0)
    assert result["groups"]["field"]["f2"]["value"] == 0.5


def test_nan_values_are_left_out_and_errors_counted() -> None:
    frame = pd.DataFrame(
        {
            "id": ["s1", "s2", "s3"],
            "value": [100.0, float("nan"), 300.0],
            "error": [None, "timeout", None],
        }
    )
    overall = aggregate(frame, n_boot=100)["overall"]
    assert overall["value"] == 200.0 and overall["n"] == 2
    assert overall["n_errors"] == 1 and overall["error_rate"] == pytest.approx(1 / 3)


def test_sums_aggregate_bootstrap_is_vectorised_and_seeded() -> None:
    from vlmhyperbench.metrics.aggregate import Aggregation
    from vlmhyperbench.metrics.text import corpus_error_rate

    frame = pd.DataFrame(
        {"value": [0.5, 1.0, 0.0, 0.2], "edits": [3, 2, 0, 1], "ref_len": [6, 2, 4, 5]}
    )
    method = Aggregation.of(corpus_error_rate, {})
    first = aggregate(frame, method=method, n_boot=400, seed=3)["overall"]
    assert first["value"] == pytest.approx(6 / 17)
    assert first == aggregate(frame, method=method, n_boot=400, seed=3)["overall"]
    assert first["ci_low"] < first["value"] < first["ci_high"]
    # The same interval as the slow path (one corpus call per resample) within noise.
    slow = aggregate(frame, value_fn=corpus_error_rate, n_boot=2000, seed=3)["overall"]
    assert slow["value"] == first["value"]
    assert abs(slow["ci_low"] - first["ci_low"]) < 0.08
