"""The scoring stage: joining predictions to the manifest, errors, and the written files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from vlmhyperbench.datasets.manifest import Sample, write_manifest
from vlmhyperbench.metrics.loader import MetricLoadError
from vlmhyperbench.metrics.scoring import score_predictions

PARQUET_COLUMNS = [
    "id",
    "value",
    "error",
    "prediction",
    "reference",
    "doc_class",
    "question_type",
    "subset",
    "field",
    "doc_id",
    "origin",
    "severity",
    "question",
]


def _values(column: pd.Series) -> list[Any]:
    """Column values with missing entries as None (pandas may read them back as NaN)."""
    return [None if pd.isna(v) else v for v in column]


def _samples() -> list[Sample]:
    return [
        Sample(
            id="s1",
            answers=["Иванов", "Иванов И."],
            doc_class="passport",
            question_type="field",
            meta={"field": "surname"},
        ),
        Sample(
            id="s2",
            answers=["Москва"],
            doc_class="passport",
            question_type="field",
            meta={"field": "city"},
        ),
        Sample(id="s3", answers=["123-456"], doc_class="snils", question_type="field"),
        Sample(id="s4", answers=["Петров"], doc_class="snils", question_type="field"),
    ]


def _write_predictions(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def _record(sample_id: str, prediction: str | None, error: str | None = None) -> dict[str, Any]:
    return {"id": sample_id, "prediction": prediction, "error": error, "performance": {}}


def _score(tmp_path: Path, predictions: Path, manifest: Path, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "metric_name": "exact_match",
        "implementation": "vlmhyperbench.metrics.text:exact_match",
        "params": {},
        "higher_is_better": True,
        "model": "tiny",
        "task": "fields",
        "out_parquet": tmp_path / "out" / "exact_match.parquet",
        "out_json": tmp_path / "out" / "exact_match.json",
        "n_boot": 200,
    }
    return score_predictions(predictions, manifest, **(options | overrides))


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "data", _samples())


def test_missing_and_errored_predictions_count_as_wrong(tmp_path: Path, manifest: Path) -> None:
    predictions = _write_predictions(
        tmp_path / "predictions" / "tiny" / "fields.jsonl",
        [
            _record("s1", "иванов"),
            # An errored line is wrong even if it carries the right text.
            _record("s2", "Москва", error="timeout"),
            # s3 has no line at all.
            _record("s4", None),
        ],
    )
    result = _score(tmp_path, predictions, manifest)

    frame = pd.read_parquet(tmp_path / "out" / "exact_match.parquet")
    assert list(frame.columns) == PARQUET_COLUMNS
    assert frame["id"].tolist() == ["s1", "s2", "s3", "s4"]
    assert frame["value"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert _values(frame["error"]) == [None, "timeout", "missing prediction", "null prediction"]
    assert _values(frame["prediction"]) == ["иванов", "Москва", None, None]
    assert frame["reference"].tolist() == ["Иванов", "Москва", "123-456", "Петров"]
    assert _values(frame["field"]) == ["surname", "city", None, None]
    assert frame["subset"].isna().all()

    assert result["n"] == 4
    assert result["n_errors"] == 3
    assert result["error_rate"] == 0.75
    assert result["overall"]["value"] == 0.25
    assert result["overall"]["n"] == 4
    assert result["groups"]["doc_class"]["passport"]["value"] == 0.5
    assert result["groups"]["doc_class"]["snils"] == {
        "value": 0.0,
        "ci_low": 0.0,
        "ci_high": 0.0,
        "n": 2,
        "n_samples": 2,
        "n_errors": 2,  # s3 has no line, s4 a null prediction
        "error_rate": 1.0,
    }
    assert result["groups"]["doc_class"]["passport"]["error_rate"] == 0.5
    # by field: s1 (surname) and s2 (city); s3/s4 have no field and are left out
    assert result["groups"]["field"]["surname"]["value"] == 1.0
    assert result["groups"]["field"]["city"]["n"] == 1
    assert set(result["groups"]) == {"doc_class", "question_type", "field"}  # subset is all null
    assert result["metric"] == "exact_match"
    assert result["model"] == "tiny" and result["task"] == "fields"
    assert result["higher_is_better"] is True

    written = json.loads((tmp_path / "out" / "exact_match.json").read_text("utf-8"))
    assert written == result


def test_unknown_prediction_id_names_file_and_id(tmp_path: Path, manifest: Path) -> None:
    predictions = _write_predictions(
        tmp_path / "p.jsonl", [_record("s1", "Иванов"), _record("ghost", "x")]
    )
    with pytest.raises(ValueError, match="ghost") as info:
        _score(tmp_path, predictions, manifest)
    assert str(predictions) in str(info.value)
    assert not (tmp_path / "out").exists()


def test_duplicate_and_malformed_prediction_lines(tmp_path: Path, manifest: Path) -> None:
    duplicate = _write_predictions(tmp_path / "d.jsonl", [_record("s1", "a"), _record("s1", "b")])
    with pytest.raises(ValueError, match=r"d\.jsonl:2: duplicate prediction id 's1'"):
        _score(tmp_path, duplicate, manifest)
    malformed = tmp_path / "m.jsonl"
    malformed.write_text('{"id": "s1"}\n{oops\n', "utf-8")
    with pytest.raises(ValueError, match=r"m\.jsonl:2: not valid JSON"):
        _score(tmp_path, malformed, manifest)


def test_params_reach_the_metric(tmp_path: Path, manifest: Path) -> None:
    predictions = _write_predictions(tmp_path / "p.jsonl", [_record("s1", "ИВАНОВ")])
    loose = _score(tmp_path, predictions, manifest)
    strict = _score(tmp_path, predictions, manifest, params={"case_sensitive": True})
    assert loose["overall"]["value"] == 0.25
    assert strict["overall"]["value"] == 0.0
    assert strict["params"] == {"case_sensitive": True}


def test_cer_scores_missing_prediction_as_one(tmp_path: Path, manifest: Path) -> None:
    predictions = _write_predictions(tmp_path / "p.jsonl", [_record("s1", "Иваноф")])
    result = _score(
        tmp_path,
        predictions,
        manifest,
        metric_name="cer",
        implementation="vlmhyperbench.metrics.text:cer",
        higher_is_better=False,
    )
    assert result["overall"]["value"] == pytest.approx((1 / 6 + 1 + 1 + 1) / 4)
    assert result["higher_is_better"] is False


def test_classification_with_corpus_aggregate(tmp_path: Path) -> None:
    samples = [
        Sample(id=f"c{i}", answers=[label], doc_class=label, question_type="classify")
        for i, label in enumerate(["passport", "passport", "passport", "snils", "snils", "inn"])
    ]
    manifest = write_manifest(tmp_path / "cls", samples)
    answers = ["Это паспорт.", "passport", "СНИЛС", "снилс", None, "ИНН"]
    predictions = _write_predictions(
        tmp_path / "p.jsonl",
        [
            _record(f"c{i}", a) if a else _record(f"c{i}", None, "oom")
            for i, a in enumerate(answers)
        ],
    )
    synonyms = {"passport": ["паспорт"], "snils": ["снилс"], "inn": ["инн"]}
    out = tmp_path / "out"
    result = _score(
        tmp_path,
        predictions,
        manifest,
        metric_name="macro_f1",
        implementation="vlmhyperbench.metrics.classification:accuracy",
        aggregate_impl="vlmhyperbench.metrics.classification:macro_f1",
        params={"synonyms": synonyms},
        out_parquet=out / "macro_f1.parquet",
        out_json=out / "macro_f1.json",
    )
    # Labels were derived from the manifest answers.
    assert result["params"]["labels"] == ["inn", "passport", "snils"]
    frame = pd.read_parquet(out / "macro_f1.parquet")
    assert list(frame.columns) == [*PARQUET_COLUMNS, "pred_label", "true_label"]
    assert _values(frame["pred_label"]) == ["passport", "passport", "snils", "snils", None, "inn"]
    assert frame["value"].tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    # passport: TP 2, FN 1 → 0.8;  snils: TP 1, FP 1, FN 1 → 0.5;  inn: 1.
    assert result["overall"]["value"] == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert result["n_errors"] == 1


def test_explicit_labels_argument(tmp_path: Path) -> None:
    samples = [Sample(id="c1", answers=["passport"]), Sample(id="c2", answers=["passport"])]
    manifest = write_manifest(tmp_path / "cls", samples)
    predictions = _write_predictions(
        tmp_path / "p.jsonl", [_record("c1", "passport"), _record("c2", "snils")]
    )
    result = _score(
        tmp_path,
        predictions,
        manifest,
        implementation="vlmhyperbench.metrics.classification:accuracy",
        labels=["passport", "snils"],
    )
    assert result["params"]["labels"] == ["passport", "snils"]
    assert result["overall"]["value"] == 0.5


def test_metric_failure_names_the_sample(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "bad", [Sample(id="no-answers", answers=[])])
    predictions = _write_predictions(tmp_path / "p.jsonl", [_record("no-answers", "x")])
    with pytest.raises(ValueError, match="'no-answers'"):
        _score(tmp_path, predictions, manifest)


def test_bad_implementation_path(tmp_path: Path, manifest: Path) -> None:
    predictions = _write_predictions(tmp_path / "p.jsonl", [])
    with pytest.raises(MetricLoadError, match=re.escape("vlmhyperbench.metrics.text:nope")):
        _score(tmp_path, predictions, manifest, implementation="vlmhyperbench.metrics.text:nope")


# --- new metric kinds through the scoring stage ----------------------------------------------


def test_per_field_metric_makes_one_row_per_field(tmp_path: Path) -> None:
    reference = json.dumps({"ФИО": "Иванов Иван", "Номер": "123"}, ensure_ascii=False)
    samples = [
        Sample(id="d1", answers=[reference], doc_class="passport"),
        Sample(id="d2", answers=[reference], doc_class="snils"),
    ]
    manifest = write_manifest(tmp_path / "ext", samples)
    predictions = _write_predictions(
        tmp_path / "p.jsonl",
        [_record("d1", '{"ФИО": "Иванов Иван", "Номер": "124"}'), _record("d2", None, "oom")],
    )
    result = _score(
        tmp_path,
        predictions,
        manifest,
        metric_name="field_accuracy",
        implementation="vlmhyperbench.metrics.extraction:field_accuracy",
        params={"cer_threshold": 0.15},
    )
    frame = pd.read_parquet(tmp_path / "out" / "exact_match.parquet")
    assert frame["id"].tolist() == ["d1", "d1", "d2", "d2"]
    assert frame["field"].tolist() == ["ФИО", "Номер", "ФИО", "Номер"]
    # "124" vs "123": CER 1/3 > 0.15; the failed document gets every field wrong.
    assert frame["value"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert result["n"] == 2 and result["overall"]["n"] == 4
    assert result["overall"]["n_samples"] == 2 and result["overall"]["error_rate"] == 0.5
    assert result["groups"]["field"]["ФИО"]["value"] == 0.5
    assert result["groups"]["doc_class"]["passport"]["value"] == 0.5


def test_performance_metrics_read_the_records(tmp_path: Path, manifest: Path) -> None:
    def line(sample_id: str, latency: float, error: str | None = None) -> dict[str, Any]:
        performance = {"latency_ms": latency, "completion_tokens": 10}
        return {"id": sample_id, "prediction": "x", "error": error, "performance": performance}

    predictions = _write_predictions(
        tmp_path / "p.jsonl",
        [line("s1", 100.0), line("s2", 200.0), line("s3", 300.0), line("s4", 5000.0, "timeout")],
    )
    result = _score(
        tmp_path,
        predictions,
        manifest,
        metric_name="latency_p95",
        implementation="vlmhyperbench.metrics.performance:latency_ms",
        aggregate_impl="vlmhyperbench.metrics.performance:percentile",
        params={"q": 95},
        higher_is_better=False,
    )
    # The failed request is left out: percentile 95 of 100, 200, 300 (linear) = 290.
    assert result["overall"]["value"] == pytest.approx(290.0)
    assert result["overall"]["n"] == 3 and result["overall"]["error_rate"] == 0.25
    errors = _score(
        tmp_path,
        predictions,
        manifest,
        metric_name="error_rate",
        implementation="vlmhyperbench.metrics.performance:error_rate",
        higher_is_better=False,
    )
    assert errors["overall"]["value"] == 0.25


def test_corpus_metric_from_sums_matches_the_reference_library(tmp_path: Path) -> None:
    import sacrebleu

    hyps = ["the cat sat on the mat", "a b c d", "кот сидел", ""]
    refs = ["the cat is on the mat", "a b c d e f", "кот сидит", "пусто"]
    samples = [Sample(id=f"b{i}", answers=[r]) for i, r in enumerate(refs)]
    manifest = write_manifest(tmp_path / "mt", samples)
    predictions = _write_predictions(
        tmp_path / "p.jsonl", [_record(f"b{i}", h) for i, h in enumerate(hyps)]
    )
    options = {
        "metric_name": "bleu",
        "implementation": "vlmhyperbench.metrics.ngram:bleu",
        "aggregate_impl": "vlmhyperbench.metrics.ngram:corpus_bleu",
    }
    result = _score(tmp_path, predictions, manifest, **options)
    assert result["overall"]["value"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert result["overall"]["ci_low"] <= result["overall"]["value"] <= result["overall"]["ci_high"]
    assert _score(tmp_path, predictions, manifest, **options) == result  # seeded


def test_confusion_matrix_details_in_the_json(tmp_path: Path) -> None:
    samples = [Sample(id=f"c{i}", answers=[a]) for i, a in enumerate(["passport", "snils"])]
    manifest = write_manifest(tmp_path / "cls", samples)
    predictions = _write_predictions(
        tmp_path / "p.jsonl", [_record("c0", "Это паспорт"), _record("c1", "не знаю")]
    )
    result = _score(
        tmp_path,
        predictions,
        manifest,
        metric_name="confusion_matrix",
        implementation="vlmhyperbench.metrics.classification:accuracy",
        aggregate_impl="vlmhyperbench.metrics.classification:confusion_matrix",
        labels=["passport", "snils"],
        synonyms={"passport": ["паспорт"]},
    )
    assert result["overall"]["value"] == 0.5
    assert result["details"]["confusion_matrix"]["matrix"] == [[1, 0, 0], [0, 0, 1]]


def test_unknown_param_is_an_error(tmp_path: Path, manifest: Path) -> None:
    predictions = _write_predictions(tmp_path / "p.jsonl", [_record("s1", "x")])
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['thresold'\]"):
        _score(
            tmp_path,
            predictions,
            manifest,
            implementation="vlmhyperbench.metrics.text:anls",
            params={"thresold": 0.5},
        )


def test_entry_point_metric_is_loaded_by_name(tmp_path: Path, manifest: Path, monkeypatch) -> None:
    from importlib.metadata import EntryPoint

    from vlmhyperbench.metrics import loader

    ep = EntryPoint("my_em", "vlmhyperbench.metrics.text:exact_match", loader.ENTRY_POINT_GROUP)
    monkeypatch.setattr(loader, "metric_entry_points", lambda: {"my_em": ep})
    predictions = _write_predictions(tmp_path / "p.jsonl", [_record("s1", "ИВАНОВ")])
    result = _score(tmp_path, predictions, manifest, implementation="my_em")
    assert result["overall"]["value"] == 0.25
    with pytest.raises(MetricLoadError, match="no entry point of that name"):
        _score(tmp_path, predictions, manifest, implementation="my_emm")


def test_wer_corpus_with_normalisation_off_is_jiwers(tmp_path: Path) -> None:
    import jiwer

    hyps = ["улица  Ленина дом 5", "\tкот сидел ", "a b c", "", "ё  ж"]
    refs = ["улица Ленина дом 7", "кот сидит на ковре", "a  b c d", "пусто", "ё ж з"]
    samples = [Sample(id=f"w{i}", answers=[r]) for i, r in enumerate(refs)]
    manifest = write_manifest(tmp_path / "wer", samples)
    predictions = _write_predictions(
        tmp_path / "p.jsonl", [_record(f"w{i}", h) for i, h in enumerate(hyps)]
    )
    off = {"clip": False, "nfkc": False, "collapse_spaces": False}
    per_sample = _score(
        tmp_path, predictions, manifest, implementation="vlmhyperbench.metrics.text:wer", params=off
    )
    frame = pd.read_parquet(tmp_path / "out" / "exact_match.parquet")
    assert frame["value"].tolist() == [jiwer.wer(r, h) for h, r in zip(hyps, refs, strict=True)]
    assert per_sample["overall"]["value"] == pytest.approx(frame["value"].mean())
    corpus = _score(
        tmp_path,
        predictions,
        manifest,
        implementation="vlmhyperbench.metrics.text:wer",
        aggregate_impl="vlmhyperbench.metrics.text:corpus_error_rate",
        params=off,
    )
    assert corpus["overall"]["value"] == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
