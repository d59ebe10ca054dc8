"""One sample across the models of a run: each model's prediction line (answer, error, prompt as
sent, performance, usage), every metric's value and the judges' verdicts with their replies.

Lines are found by scanning the model's file for the id's JSON text and parsing the candidates
(so a 1,000-line file costs a substring search, not 1,000 JSON parses); the last line with the id
wins, as in the journal's files. A missing or broken file means "not recorded", never a crash.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmhyperbench.explorer.catalog import Catalog
from vlmhyperbench.reporting.judge_metrics import judgements_path

PERFORMANCE_SHOWN = ("latency_ms", "ttft_ms", "tpot_ms", "prompt_tokens", "completion_tokens")


def find_line(path: Path, sample_id: str) -> dict[str, Any] | None:
    """The last JSON object line of ``path`` whose ``id`` is ``sample_id``."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    needles = {json.dumps(sample_id), json.dumps(sample_id, ensure_ascii=False)}
    found = None
    for line in text.splitlines():
        if not any(needle in line for needle in needles):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and str(record.get("id")) == sample_id:
            found = record
    return found


def as_text(value: Any) -> str | None:
    """An answer as shown: strings as they are, other JSON values as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class ModelSample:
    model: str
    recorded: bool  # a prediction line was found
    answer: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    prompt: dict[str, str] = field(default_factory=dict)  # system, user as sent
    performance: dict[str, float | None] = field(default_factory=dict)
    values: list[dict[str, Any]] = field(default_factory=list)  # metric, value, rows
    judgements: list[dict[str, Any]] = field(default_factory=list)


def _prompt(record: dict[str, Any]) -> dict[str, str]:
    prompt = record.get("prompt")
    if not isinstance(prompt, dict):
        return {}
    return {k: as_text(prompt.get(k)) or "" for k in ("system", "user") if prompt.get(k)}


def _performance(record: dict[str, Any]) -> dict[str, float | None]:
    performance = record.get("performance")
    performance = performance if isinstance(performance, dict) else {}
    usage = record.get("usage") if isinstance(record.get("usage"), dict) else {}
    out = {name: _number(performance.get(name)) for name in PERFORMANCE_SHOWN}
    for name in ("prompt_tokens", "completion_tokens"):
        if usage.get(name) is not None:
            out[name] = _number(usage.get(name))
    return out


def _judgements(catalog: Catalog, task: str, model: str, sample_id: str) -> list[dict[str, Any]]:
    judge_metrics = catalog.judge_metrics()
    if not judge_metrics:
        return []
    out = []
    for metric in catalog.metrics(task):
        judge_metric = judge_metrics.get(metric)
        for judge in judge_metric.judges if judge_metric else ():
            path = judgements_path(catalog.root, metric, judge, model, task)
            line = find_line(path, sample_id) or {}
            out.append(
                {
                    "metric": metric,
                    "judge": judge,
                    "found": bool(line),
                    "verdict": _number(line.get("verdict")),
                    **{k: as_text(line.get(k)) for k in ("label", "status", "detail", "reply")},
                    "error": as_text(line.get("error")),
                }
            )
    return out


def model_samples(
    catalog: Catalog, task: str, sample_id: str, values: dict[tuple[str, str], tuple]
) -> list[ModelSample]:
    """Per model of ``task``: its line for ``sample_id`` and the sample's metric values
    (``values``: (model, metric) → (value, rows), as :meth:`ScoreStore.sample_values` gives)."""
    out = []
    for model in catalog.models(task):
        path = catalog.root / "predictions" / model / f"{task}.jsonl"
        record = find_line(path, sample_id)
        entry = ModelSample(model=model, recorded=record is not None)
        entry.values = [
            {
                "metric": metric,
                "value": _number(values.get((model, metric), (None, 0))[0]),
                "rows": int(values.get((model, metric), (None, 0))[1]),
                "higher": catalog.higher_is_better(task, metric),
            }
            for metric in catalog.metrics(task)
        ]
        entry.judgements = _judgements(catalog, task, model, sample_id)
        if record is not None:
            entry.answer = as_text(record.get("prediction"))
            entry.error = as_text(record.get("error"))
            entry.finish_reason = as_text(record.get("finish_reason"))
            entry.prompt = _prompt(record)
            entry.performance = _performance(record)
        out.append(entry)
    return out
