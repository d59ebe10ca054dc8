"""Score one model's predictions for one task with one metric.

Every manifest sample gets a row (a per-field metric: one row per field). A sample whose
prediction errored, is null or has no line at all is scored on the empty string — wrong by
construction — and its error is recorded, so failures lower the score instead of silently
shrinking the denominator; the JSON reports the error rate overall and per group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vlmhyperbench.datasets.manifest import Sample, read_manifest
from vlmhyperbench.metrics.aggregate import GROUP_COLUMNS, accepted, aggregate
from vlmhyperbench.metrics.loader import Metric, load_metric
from vlmhyperbench.runtime.io import atomic_write, atomic_write_json

MISSING_PREDICTION = "missing prediction"
NULL_PREDICTION = "null prediction"

BASE_COLUMNS: dict[str, pa.DataType] = {
    "id": pa.string(),
    "value": pa.float64(),
    "error": pa.string(),
    "prediction": pa.string(),
    "reference": pa.string(),
    "doc_class": pa.string(),
    "question_type": pa.string(),
    "subset": pa.string(),
    "field": pa.string(),
    # For the report: the resampling unit (the page), robustness pairs, the question asked.
    "doc_id": pa.string(),
    "origin": pa.string(),
    "severity": pa.float64(),
    "question": pa.string(),
}


def read_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """Prediction records by id; malformed lines and duplicate ids name the file and line."""
    path = Path(path)
    records: dict[str, dict[str, Any]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON: {exc.msg}") from exc
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise ValueError(f"{path}:{lineno}: a prediction line needs a string 'id'")
        if record["id"] in records:
            raise ValueError(f"{path}:{lineno}: duplicate prediction id {record['id']!r}")
        records[record["id"]] = record
    return records


def _effective_params(
    metric: Metric,
    params: Mapping[str, Any] | None,
    labels: Sequence[str] | None,
    samples: list[Sample],
    synonyms: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The metric's params plus the task's ``labels`` and ``synonyms`` for label-aware metrics.

    Labels come from the ``labels`` argument, else from the params, else from the distinct
    first answers of the manifest. Metrics that take no such parameter never get them.
    """
    effective = dict(params or {})
    if "labels" not in effective and metric.takes("labels"):
        if labels is None:
            labels = sorted({s.answers[0] for s in samples if s.answers})
        effective["labels"] = list(labels)
    if synonyms and "synonyms" not in effective and metric.takes("synonyms"):
        effective["synonyms"] = {label: list(words) for label, words in synonyms.items()}
    return effective


def _prediction_text(record: dict[str, Any] | None) -> tuple[str | None, str, str | None]:
    """(raw prediction, text to score, error) for one manifest sample."""
    if record is None:
        return None, "", MISSING_PREDICTION
    raw = record.get("prediction")
    error = record.get("error")
    if error is not None:
        return raw, "", str(error)
    if raw is None:
        return None, "", NULL_PREDICTION
    return str(raw), str(raw), None


def sample_view(sample: Sample, record: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    """What a metric that asks for ``sample`` gets: the manifest fields, the prediction record
    (``None`` when the sample has no line) and the error (``None`` when it succeeded)."""
    return {**sample.model_dump(), "record": record, "error": error}


def _base_row(sample: Sample, raw: str | None, error: str | None) -> dict[str, Any]:
    field = sample.meta.get("field")
    return {
        "id": sample.id,
        "value": None,
        "error": error,
        "prediction": raw,
        "reference": sample.answers[0] if sample.answers else None,
        "doc_class": sample.doc_class,
        "question_type": sample.question_type,
        "subset": sample.subset,
        "field": None if field is None else str(field),
        "doc_id": _text(sample.meta.get("doc_id")),
        "origin": _text(sample.meta.get("origin")),
        "severity": _severity(sample.meta.get("severity")),
        "question": sample.question,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _severity(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _failure(sample: Sample, metric: Metric, exc: Exception) -> ValueError:
    return ValueError(f"sample {sample.id!r}: {metric.implementation} failed: {exc}")


def _rows_one_by_one(
    samples: list[Sample],
    inputs: list[tuple[str | None, str, str | None]],
    views: list[dict[str, Any] | None],
    metric: Metric,
    params: dict[str, Any],
) -> list[dict[str, Any]]:
    rows = []
    score = metric.bind(params)
    columns_kw = accepted(metric.row_columns, params) if metric.row_columns else {}
    for sample, (raw, text, error), view in zip(samples, inputs, views, strict=True):
        base = _base_row(sample, raw, error)
        try:
            result = score(text, sample.answers, view)
            extra = (
                metric.row_columns(text, sample.answers, **columns_kw) if metric.row_columns else {}
            )
        except Exception as exc:
            raise _failure(sample, metric, exc) from exc
        if isinstance(result, Mapping):
            # A per-field metric: one row per field.
            rows.extend({**base, "field": str(k), "value": float(v)} for k, v in result.items())
        else:
            rows.append({**base, "value": float(result), **extra})
    return rows


def build_score_frame(
    predictions: Mapping[str, dict[str, Any]],
    samples: list[Sample],
    metric: Metric,
    params: dict[str, Any],
) -> pd.DataFrame:
    inputs = [_prediction_text(predictions.get(sample.id)) for sample in samples]
    wants_sample = metric.wants_sample
    views = [
        sample_view(sample, predictions.get(sample.id), error) if wants_sample else None
        for sample, (_, _, error) in zip(samples, inputs, strict=True)
    ]
    rows = _rows_one_by_one(samples, inputs, views, metric, params)
    extra = list(dict.fromkeys(c for row in rows for c in row if c not in BASE_COLUMNS))
    return pd.DataFrame(rows, columns=[*BASE_COLUMNS, *extra])


def write_score_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write with an explicit schema so an all-null column is still typed as a string (extra
    columns of a metric keep their inferred type)."""

    def column_type(name: str) -> pa.DataType:
        if name in BASE_COLUMNS:
            return BASE_COLUMNS[name]
        if frame[name].isna().all():
            return pa.string()
        return pa.array(frame[name], from_pandas=True).type

    schema = pa.schema([(name, column_type(name)) for name in frame.columns])
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    with atomic_write(path, "wb") as handle:
        pq.write_table(table, handle)


def add_judgements(
    predictions: dict[str, dict[str, Any]],
    judgements: Mapping[str, str | Path],
    rule_accepted: Mapping[str, float],
) -> None:
    """Put a judge metric's verdicts into the prediction records (``judgements: {judge:
    line}``), and the rule's value of the samples its ``only_when`` accepted (``rule_value``)."""
    for judge, path in judgements.items():
        for sample_id, line in read_predictions(path).items():
            if sample_id in predictions:
                predictions[sample_id].setdefault("judgements", {})[judge] = line
    for sample_id, value in rule_accepted.items():
        if sample_id in predictions:
            predictions[sample_id]["rule_value"] = value


def with_judge_columns(
    frame: pd.DataFrame,
    predictions: Mapping[str, dict[str, Any]],
    samples: list[Sample],
    judges: list[str],
    metric_name: str,
) -> pd.DataFrame:
    """A judge metric's rows with each judge's verdict and status (``judge_verdict:<judge>``,
    ``judge_status:<judge>``; no status: not judged, e.g. a failed prediction) and the
    sample's human label for the metric, if its manifest record has one
    (``meta.human_labels.<metric>``), for the report's agreement figures."""
    by_id = {sample.id: sample for sample in samples}
    frame = frame.copy()
    for judge in judges:
        lines = [
            ((predictions.get(i) or {}).get("judgements") or {}).get(judge) or {}
            for i in frame["id"]
        ]  # fmt: skip
        frame[f"judge_verdict:{judge}"] = [line.get("verdict") for line in lines]
        frame[f"judge_status:{judge}"] = [line.get("status") for line in lines]
    labels = [(by_id[i].meta.get("human_labels") or {}).get(metric_name) for i in frame["id"]]
    frame["human_label"] = [None if label is None else str(label) for label in labels]
    return frame


def judge_summary(frame: pd.DataFrame, judges: list[str]) -> dict[str, Any]:
    """Per judge: samples judged, its invalid and error counts, and its own mean verdict."""
    summary = {}
    for judge in judges:
        status = frame[f"judge_status:{judge}"]
        verdicts = pd.to_numeric(frame[f"judge_verdict:{judge}"], errors="coerce")
        judged = int(status.notna().sum())
        invalid = int((status == "invalid").sum())
        summary[judge] = {
            "judged": judged,
            "invalid": invalid,
            "errors": int((status == "error").sum()),
            "invalid_rate": invalid / judged if judged else 0.0,
            "mean": float(verdicts.mean()) if verdicts.notna().any() else None,
        }
    return summary


def score_predictions(
    predictions_path: str | Path,
    manifest_path: str | Path,
    *,
    metric_name: str,
    implementation: str,
    aggregate_impl: str | None = None,
    params: Mapping[str, Any] | None = None,
    higher_is_better: bool,
    model: str,
    task: str,
    out_parquet: str | Path,
    out_json: str | Path,
    n_boot: int = 1000,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    synonyms: Mapping[str, Sequence[str]] | None = None,
    samples: list[Sample] | None = None,
    judgements: Mapping[str, str | Path] | None = None,
    rule_accepted: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Score, aggregate, write ``{metric}.parquet`` and ``{metric}.json``; return the JSON dict.

    ``samples`` is the task's selection from the manifest (filters, limit); by default every
    sample of the manifest is scored. ``judgements``: a judge metric's judgements files by
    judge, put into each prediction record as ``judgements: {judge: line}``;
    ``rule_accepted``: the samples its ``only_when`` rule accepted, with the rule's value.
    """
    metric = load_metric(implementation, aggregate_impl)
    if samples is None:
        samples = read_manifest(manifest_path)
    predictions = read_predictions(predictions_path)
    add_judgements(predictions, judgements or {}, rule_accepted or {})
    known = {sample.id for sample in samples}
    unknown = [pid for pid in predictions if pid not in known]
    if unknown:
        raise ValueError(
            f"{predictions_path}: prediction id {unknown[0]!r} is not in the manifest "
            f"{manifest_path} ({len(unknown)} unknown id(s))"
        )
    effective = _effective_params(metric, params, labels, samples, synonyms)
    metric.check_params(effective)
    frame = build_score_frame(predictions, samples, metric, effective)
    if judgements is not None:
        frame = with_judge_columns(frame, predictions, samples, list(judgements), metric_name)

    stats = aggregate(
        frame,
        method=metric.aggregation(effective),
        group_columns=GROUP_COLUMNS,
        n_boot=n_boot,
        seed=seed,
    )
    n = len(samples)
    n_errors = sum(1 for s in samples if _prediction_text(predictions.get(s.id))[2] is not None)
    result = {
        "metric": metric_name,
        "model": model,
        "task": task,
        "higher_is_better": bool(higher_is_better),
        "params": effective,
        "implementation": implementation,
        "aggregate": aggregate_impl,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "ci": 0.95},
        "n": n,
        "n_errors": n_errors,
        "error_rate": n_errors / n if n else 0.0,
        "overall": stats["overall"],
        "groups": stats["groups"],
    }
    if metric.details is not None:
        result["details"] = metric.details(frame, **accepted(metric.details, effective))
    if judgements is not None:
        result["judges"] = judge_summary(frame, list(judgements))
        result["accepted_by_rule"] = len(rule_accepted or {})
    write_score_parquet(frame, out_parquet)
    atomic_write_json(out_json, result)
    return result
