"""Read a ``results/`` folder for the report: summary, per-sample scores, predictions, provenance.

Every gap is a warning naming its file (a missing or truncated score file, a prediction file
without ``performance``, unreadable provenance), never a crash. Only a folder without a summary
is an error: it is not a results folder.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vlmhyperbench.pipeline.provenance import PROVENANCE_DIR
from vlmhyperbench.reporting.summary import OVERALL, SUMMARY_COLUMNS
from vlmhyperbench.stats.resampling import cluster_labels

VALUE_COLUMNS = ("id", "value", "doc_id", "origin", "severity", "subset")
TEXT_COLUMNS = ("question", "reference", "prediction", "error")
PERFORMANCE_FIELDS = ("latency_ms", "ttft_ms", "tpot_ms", "completion_tokens", "peak_memory_mb")
#: the tokens a sample was billed for: column → its field in the line's ``usage`` (the OpenAI
#: response's), else in its ``performance``
USAGE_FIELDS = {"input_tokens": "prompt_tokens", "output_tokens": "completion_tokens"}


class NotAResultsFolder(ValueError):
    """The folder lacks what every results folder has (the summary)."""


@dataclass
class SampleScores:
    """One (model, task, metric): per-sample values (per-field rows averaged per sample)."""

    ids: np.ndarray
    values: np.ndarray
    clusters: np.ndarray  # doc_id, or the sample id where there is none
    origin: np.ndarray  # clean sample id of a distorted copy, or ""
    severity: np.ndarray  # NaN where unknown
    subset: np.ndarray
    text: pd.DataFrame | None = None  # question/reference/prediction/error (primary metric)
    arrow_ids: pa.Array | None = None  # the ids as read, to compare other files' ids in C++


@dataclass
class Results:
    root: Path
    summary: pd.DataFrame
    scores: dict[tuple[str, str, str], SampleScores] = field(default_factory=dict)
    predictions: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    provenance: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.overall = self.summary[self.summary["group_by"] == OVERALL]
        self._metrics: dict[str, list[str]] = {}
        self._higher: dict[tuple[str, str], bool] = {}
        for row in self.overall[["task", "metric", "higher_is_better"]].itertuples(index=False):
            metrics = self._metrics.setdefault(row.task, [])
            if row.metric not in metrics:
                metrics.append(row.metric)
            self._higher.setdefault((row.task, row.metric), bool(row.higher_is_better))
        self._by_metric: dict[tuple[str, str], dict[str, SampleScores]] | None = None

    def tasks(self) -> list[str]:
        return list(self._metrics)

    def models(self) -> list[str]:
        return sorted(set(self.overall["model"].tolist()))

    def metrics(self, task: str) -> list[str]:
        return self._metrics.get(task, [])

    def primary(self, task: str) -> str:
        return self.metrics(task)[0]

    def higher_is_better(self, task: str, metric: str) -> bool:
        return self._higher.get((task, metric), True)

    def score_keys(self) -> set[tuple[str, str, str]]:
        """The (model, task, metric) triples the summary has a score for."""
        return {(r.model, r.task, r.metric) for r in self.overall.itertuples()}

    def by_metric(self, task: str, metric: str) -> dict[str, SampleScores]:
        """model → per-sample scores of one (task, metric); built once, after loading."""
        if self._by_metric is None:
            self._by_metric = {}
            for (model, t, m), scores in sorted(self.scores.items()):
                self._by_metric.setdefault((t, m), {})[model] = scores
        return self._by_metric.get((task, metric), {})

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def read_summary(root: Path) -> pd.DataFrame:
    parquet, csv = root / "summary.parquet", root / "summary.csv"
    if parquet.is_file():
        frame = pd.read_parquet(parquet)
    elif csv.is_file():
        frame = pd.read_csv(csv)
    else:
        raise NotAResultsFolder(
            f"{root}: not a results folder: neither summary.parquet nor summary.csv exists "
            "(run the workflow's summarize step first)"
        )
    missing = [c for c in ("model", "task", "metric", "group_by", "value") if c not in frame]
    if missing:
        raise NotAResultsFolder(f"{parquet if parquet.is_file() else csv}: lacks {missing}")
    for column in SUMMARY_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    frame = frame.copy()
    for column in ("value", "ci_low", "ci_high", "error_rate"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in ("model", "task", "metric", "group_by", "group"):
        frame[column] = frame[column].astype(str)
    frame["higher_is_better"] = frame["higher_is_better"].fillna(True).astype(bool)
    return frame


def _per_sample(table: pd.DataFrame) -> pd.DataFrame:
    """One row per sample id: values averaged over its rows (NaN ignored), first text."""
    if table["id"].is_unique:
        return table
    values = table.groupby("id", sort=False)["value"].mean()
    first = table.drop_duplicates("id").set_index("id")
    first["value"] = values
    return first.reset_index()


def _text_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), "", dtype=object)
    return frame[name].fillna("").astype(str).to_numpy(dtype=object)


def read_sample_scores(path: Path, with_text: bool) -> SampleScores:
    schema = pq.read_schema(path)
    wanted = [*VALUE_COLUMNS, *(TEXT_COLUMNS if with_text else ())]
    arrow = pq.read_table(path, columns=[c for c in wanted if c in schema.names])
    table = arrow.to_pandas()
    if "id" not in table or "value" not in table:
        raise ValueError("lacks the id or value column")
    table["id"] = table["id"].astype(str)
    table["value"] = pd.to_numeric(table["value"], errors="coerce").astype(float)
    table = _per_sample(table)
    ids = table["id"].to_numpy(dtype=object)
    clusters = cluster_labels(ids, _text_column(table, "doc_id"))
    severity = (
        pd.to_numeric(table["severity"], errors="coerce").to_numpy(dtype=float)
        if "severity" in table
        else np.full(len(table), math.nan)
    )
    text = None
    if with_text:
        text = pd.DataFrame({c: _text_column(table, c) for c in TEXT_COLUMNS})
        text.insert(0, "id", ids)
        text["value"] = table["value"].to_numpy()
    # Files whose ids equal these, in this order, share this file's sample columns.
    same_rows = "id" in arrow.column_names and len(table) == arrow.num_rows
    arrow_ids = arrow.column("id").combine_chunks() if same_rows else None
    return SampleScores(
        arrow_ids=arrow_ids,
        ids=ids,
        values=table["value"].to_numpy(dtype=float),
        clusters=clusters,
        origin=_text_column(table, "origin"),
        severity=severity,
        subset=_text_column(table, "subset"),
        text=text,
    )


def read_values(path: Path, like: SampleScores | None) -> SampleScores:
    """Only ids and values, taking the sample columns from ``like`` (the same model and task's
    main metric, read in full) when the ids are the same; else a full read."""
    table = pq.read_table(path, columns=["id", "value"], use_threads=False)
    ids = table.column("id").combine_chunks()
    if like is None or like.arrow_ids is None or not ids.equals(like.arrow_ids):
        return read_sample_scores(path, with_text=False)
    values = table.column("value").to_numpy(zero_copy_only=False).astype(float)
    return SampleScores(
        ids=like.ids,
        values=values,
        clusters=like.clusters,
        origin=like.origin,
        severity=like.severity,
        subset=like.subset,
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _usage(record: dict[str, Any], performance: dict[str, Any]) -> dict[str, float]:
    usage = record.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    out = {}
    for column, name in USAGE_FIELDS.items():
        value = _number(usage.get(name))
        out[column] = value if value == value else _number(performance.get(name))
    return out


def read_predictions(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Per-sample error, performance fields and token usage of one prediction file, plus
    warnings."""
    rows, warnings, no_performance = [], [], 0
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            warnings.append(f"{path}:{lineno}: not valid JSON; line skipped")
            continue
        if not isinstance(record, dict):
            continue
        performance = record.get("performance")
        if not isinstance(performance, dict):
            performance = {}
            no_performance += record.get("error") is None
        error = record.get("error")
        rows.append(
            {
                "id": str(record.get("id")),
                "error": None if error is None else str(error),
                **{name: _number(performance.get(name)) for name in PERFORMANCE_FIELDS},
                **_usage(record, performance),
            }
        )
    if no_performance:
        warnings.append(
            f"{path}: {no_performance} answered sample(s) without a 'performance' object; "
            "their latency and throughput are left out"
        )
    columns = ["id", "error", *PERFORMANCE_FIELDS, *USAGE_FIELDS]
    return pd.DataFrame(rows, columns=columns), warnings


def score_path(root: Path, model: str, task: str, metric: str) -> Path:
    return root / "scores" / model / task / f"{metric}.parquet"


def read_scores(results: Results, keys: list[tuple[str, str, str]], threads: int = 4) -> None:
    """Read the (model, task, metric) score files of ``keys`` into ``results.scores``: a main
    metric's in full (with its text), the others' ids and values, in ``threads`` threads; a
    missing or unreadable file is a warning (a gap)."""
    root = results.root
    primary = {task: results.primary(task) for task in results.tasks()}

    def read(key: tuple[str, str, str]) -> tuple[tuple, SampleScores | None, str | None]:
        path = score_path(root, *key)
        if not path.is_file():
            gap = "score file missing; per-sample statistics skipped"
            return key, None, f"{results.rel(path)}: {gap}"
        try:
            model, task, metric = key
            if primary[task] == metric:
                return key, read_sample_scores(path, with_text=True), None
            return key, read_values(path, results.scores.get((model, task, primary[task]))), None
        except Exception as exc:  # a truncated or foreign file: shown as a gap
            return key, None, f"{results.rel(path)}: unreadable ({type(exc).__name__}: {exc})"

    # Main metrics first (read in full), then the others (ids and values only).
    first = [k for k in keys if primary[k[1]] == k[2]]
    rest = [k for k in keys if primary[k[1]] != k[2]]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for batch in (first, rest):
            for key, scores, warning in pool.map(read, batch):
                if scores is not None:
                    results.scores[key] = scores
                if warning:
                    results.warnings.append(warning)


def load_results(root: str | Path, *, threads: int = 4) -> Results:
    """Everything the report reads, from ``root`` (a ``results/`` folder) alone."""
    root = Path(root)
    if not root.is_dir():
        raise NotAResultsFolder(f"{root}: no such folder")
    results = Results(root=root, summary=read_summary(root))
    overall = results.overall
    read_scores(results, sorted(results.score_keys()), threads)

    for path in sorted((root / "predictions").glob("*/*.jsonl")):
        model, task = path.parent.name, path.stem
        try:
            frame, warnings = read_predictions(path)
        except (OSError, UnicodeDecodeError) as exc:
            results.warnings.append(f"{results.rel(path)}: unreadable ({exc})")
            continue
        results.predictions[(model, task)] = frame
        results.warnings.extend(w.replace(str(root) + "/", "") for w in warnings)

    for path in sorted((root / PROVENANCE_DIR).glob("*/*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            results.warnings.append(f"{results.rel(path)}: unreadable provenance ({exc})")
            continue
        if isinstance(record, dict):
            results.provenance[(path.parent.name, path.stem)] = record

    for model in results.models():
        for task in results.tasks():
            has_scores = not overall[(overall["model"] == model) & (overall["task"] == task)].empty
            if has_scores and (model, task) not in results.predictions:
                results.warnings.append(
                    f"predictions/{model}/{task}.jsonl: missing; performance not shown"
                )
    nan_rows = overall[overall["value"].isna()]
    for row in nan_rows.itertuples():
        results.warnings.append(
            f"scores/{row.model}/{row.task}/{row.metric}.json: no value (NaN or no samples)"
        )
    return results
