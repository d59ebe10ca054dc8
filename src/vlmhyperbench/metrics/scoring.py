"""Score one model's predictions for one task with one metric.

Every manifest sample gets a row. A sample whose prediction errored, is null or has no line at
all is scored on the empty string — wrong by construction — and its error is recorded, so
failures lower the score instead of silently shrinking the denominator.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vlmhyperbench.datasets.manifest import Sample, read_manifest
from vlmhyperbench.io import atomic_write, atomic_write_json
from vlmhyperbench.metrics.aggregate import GROUP_COLUMNS, aggregate
from vlmhyperbench.metrics.loader import Metric, load_metric

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


def _accepts(fn: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


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
    if "labels" not in effective and _accepts(metric.score, "labels"):
        if labels is None:
            labels = sorted({s.answers[0] for s in samples if s.answers})
        effective["labels"] = list(labels)
    if synonyms and "synonyms" not in effective and _accepts(metric.score, "synonyms"):
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


def _score_row(
    sample: Sample, record: dict[str, Any] | None, metric: Metric, params: dict[str, Any]
) -> dict[str, Any]:
    raw, text, error = _prediction_text(record)
    try:
        value = metric.score_one(text, sample.answers, params)
        extra = metric.row_columns(text, sample.answers, **params) if metric.row_columns else {}
    except Exception as exc:
        raise ValueError(f"sample {sample.id!r}: {metric.implementation} failed: {exc}") from exc
    field = sample.meta.get("field")
    return {
        "id": sample.id,
        "value": value,
        "error": error,
        "prediction": raw,
        "reference": sample.answers[0] if sample.answers else None,
        "doc_class": sample.doc_class,
        "question_type": sample.question_type,
        "subset": sample.subset,
        "field": None if field is None else str(field),
        **extra,
    }


def build_score_frame(
    predictions: Mapping[str, dict[str, Any]],
    samples: list[Sample],
    metric: Metric,
    params: dict[str, Any],
) -> pd.DataFrame:
    rows = [_score_row(sample, predictions.get(sample.id), metric, params) for sample in samples]
    columns = list(BASE_COLUMNS) + [c for c in (rows[0] if rows else {}) if c not in BASE_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def write_score_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write with an explicit schema so an all-null column is still typed as a string."""
    schema = pa.schema([(name, BASE_COLUMNS.get(name, pa.string())) for name in frame.columns])
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    with atomic_write(path, "wb") as handle:
        pq.write_table(table, handle)


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
) -> dict[str, Any]:
    """Score, aggregate, write ``{metric}.parquet`` and ``{metric}.json``; return the JSON dict.

    ``samples`` is the task's selection from the manifest (filters, limit); by default every
    sample of the manifest is scored.
    """
    metric = load_metric(implementation, aggregate_impl)
    if samples is None:
        samples = read_manifest(manifest_path)
    predictions = read_predictions(predictions_path)
    known = {sample.id for sample in samples}
    unknown = [pid for pid in predictions if pid not in known]
    if unknown:
        raise ValueError(
            f"{predictions_path}: prediction id {unknown[0]!r} is not in the manifest "
            f"{manifest_path} ({len(unknown)} unknown id(s))"
        )
    effective = _effective_params(metric, params, labels, samples, synonyms)
    frame = build_score_frame(predictions, samples, metric, effective)

    # Without a corpus aggregate the mean of ``value`` is used (and bootstrapped vectorised).
    value_fn = partial(metric.corpus_value, params=effective) if metric.aggregate else None
    stats = aggregate(
        frame, value_fn=value_fn, group_columns=GROUP_COLUMNS, n_boot=n_boot, seed=seed
    )
    n = len(frame)
    n_errors = int(frame["error"].notna().sum())
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
    write_score_parquet(frame, out_parquet)
    atomic_write_json(out_json, result)
    return result
