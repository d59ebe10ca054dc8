"""Markdown leaderboard from the summary table, plus a latency/throughput table.

Tasks and metrics appear in the order of the summary; the first metric of a task is its
primary metric, which orders the models of the task table and fills the overview.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vlmhyperbench.reporting.summary import OVERALL
from vlmhyperbench.reporting.variants import group_order, name_order
from vlmhyperbench.runtime.io import atomic_write

DASH = "—"
VALUE_DIGITS = 3
PERFORMANCE_COLUMNS = [
    "model",
    "task",
    "n",
    "n_errors",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_mean_ms",
    "tokens_per_s_mean",
]
_PERFORMANCE_HEADERS = {
    "model": "Model",
    "task": "Task",
    "n": "n",
    "n_errors": "errors",
    "latency_p50_ms": "latency p50, ms",
    "latency_p95_ms": "latency p95, ms",
    "ttft_mean_ms": "TTFT mean, ms",
    "tokens_per_s_mean": "tokens/s mean",
}


# --- performance -----------------------------------------------------------------------------


def _number(value: Any) -> float:
    """A float, or NaN for a missing or non-numeric field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _performance_row(path: Path) -> dict[str, Any]:
    records = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    ok = [r for r in records if r.get("error") is None]
    perf = [r.get("performance") or {} for r in ok]
    latency = np.array([_number(p.get("latency_ms")) for p in perf], dtype=float)
    ttft = np.array([_number(p.get("ttft_ms")) for p in perf], dtype=float)
    tokens = np.array([_number(p.get("completion_tokens")) for p in perf], dtype=float)
    # End-to-end throughput per request: completion tokens over the whole request latency.
    valid = (latency > 0) & ~np.isnan(tokens)
    rate = tokens[valid] / (latency[valid] / 1000.0)
    latency = latency[~np.isnan(latency)]
    ttft = ttft[~np.isnan(ttft)]
    return {
        "model": path.parent.name,
        "task": path.stem,
        "n": len(records),
        "n_errors": len(records) - len(ok),
        "latency_p50_ms": float(np.percentile(latency, 50)) if latency.size else math.nan,
        "latency_p95_ms": float(np.percentile(latency, 95)) if latency.size else math.nan,
        "ttft_mean_ms": float(ttft.mean()) if ttft.size else math.nan,
        "tokens_per_s_mean": float(rate.mean()) if rate.size else math.nan,
    }


def performance_table(prediction_paths: Iterable[str | Path]) -> pd.DataFrame:
    """Latency and throughput per model × task from ``predictions/{model}/{task}.jsonl`` files.

    Errored samples count in ``n`` and ``n_errors`` but not in the timing statistics.
    """
    rows = [_performance_row(Path(p)) for p in prediction_paths]
    return pd.DataFrame(rows, columns=PERFORMANCE_COLUMNS)


# --- formatting ------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _rounded(value: Any) -> float | None:
    return None if _missing(value) else round(float(value), VALUE_DIGITS)


def _best(values: Iterable[Any], higher_is_better: bool) -> float | None:
    """The best displayed (rounded) value, so equal-looking ties are all bold."""
    present = [v for v in map(_rounded, values) if v is not None]
    if not present:
        return None
    return max(present) if higher_is_better else min(present)


def _cell(entry: Mapping[str, Any] | None, best: float | None, *, with_ci: bool) -> str:
    if entry is None or _missing(entry["value"]):
        return DASH
    text = f"{float(entry['value']):.{VALUE_DIGITS}f}"
    if best is not None and _rounded(entry["value"]) == best:
        text = f"**{text}**"
    if with_ci and not _missing(entry["ci_low"]) and not _missing(entry["ci_high"]):
        text += f" [{float(entry['ci_low']):.2f}, {float(entry['ci_high']):.2f}]"
    return text


def _arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


# --- leaderboard -----------------------------------------------------------------------------


def _ordered(values: pd.Series) -> list[str]:
    return list(dict.fromkeys(values.tolist()))


def _rank_models(overall: pd.DataFrame, metric: str, higher_is_better: bool) -> list[str]:
    """Models best-first by the metric; models without a value last, then by name."""
    primary = overall[overall["metric"] == metric].set_index("model")["value"]

    def key(model: str) -> tuple[int, float, str]:
        value = primary.get(model)
        if _missing(value):
            return (1, 0.0, model)
        return (0, -float(value) if higher_is_better else float(value), model)

    return sorted(overall["model"].unique(), key=key)


def _group_cells(
    ordered: list[tuple[str, list[str]]] | None, models: list[str]
) -> list[tuple[str, list[str]]]:
    """(model, leading cells): the model's name, and before it its group's name on the group's
    first row (blank below it) when ``ordered`` groups the models."""
    if ordered is None:
        return [(model, [_escape(model)]) for model in models]
    return [
        (model, [_escape(group) if k == 0 else "", _escape(model)])
        for group, members in ordered
        for k, model in enumerate(members)
    ]


def _grouping(
    models: list[str], group_of: Callable[[str], str] | None, by_name: bool = False
) -> list[tuple[str, list[str]]] | None:
    if group_of is None or len({group_of(m) for m in models}) == len(models):
        return None
    return name_order(models, group_of) if by_name else group_order(models, group_of)


def _task_section(
    task: str, overall: pd.DataFrame, group_of: Callable[[str], str] | None = None
) -> list[str]:
    metrics = _ordered(overall["metric"])
    direction = overall.groupby("metric", sort=False)["higher_is_better"].first()
    entries = {(r["model"], r["metric"]): r for r in overall.to_dict("records")}
    # Samples, not scored rows: a per-field metric scores several rows per sample.
    ns = overall.groupby("model")["n_samples"].max()
    best = {m: _best(overall.loc[overall["metric"] == m, "value"], direction[m]) for m in metrics}
    rows = []
    ranked = _rank_models(overall, metrics[0], bool(direction[metrics[0]]))
    grouping = _grouping(ranked, group_of)
    for model, lead in _group_cells(grouping, ranked):
        cells = [_cell(entries.get((model, m)), best[m], with_ci=True) for m in metrics]
        rows.append([*lead, *cells, str(int(ns[model]))])
    headers = [
        *(["Group"] if grouping else []),
        "Model",
        *[f"{_escape(m)} {_arrow(direction[m])}" for m in metrics],
        "n",
    ]
    return [f"## Task: {_escape(task)}", "", *_table(headers, rows), ""]


def _overview(overall: pd.DataFrame, group_of: Callable[[str], str] | None = None) -> list[str]:
    tasks = _ordered(overall["task"])
    primary = {t: overall.loc[overall["task"] == t, "metric"].iloc[0] for t in tasks}
    models = sorted(overall["model"].unique())
    grouping = _grouping(models, group_of, by_name=True)
    headers = ["Group", "Model"] if grouping else ["Model"]
    best = {}
    for task in tasks:
        rows = overall[(overall["task"] == task) & (overall["metric"] == primary[task])]
        higher = bool(rows["higher_is_better"].iloc[0])
        headers.append(f"{_escape(task)} ({_escape(primary[task])} {_arrow(higher)})")
        best[task] = _best(rows["value"], higher)
    entries = {(r["model"], r["task"], r["metric"]): r for r in overall.to_dict("records")}
    table_rows = [
        [
            *lead,
            *[_cell(entries.get((model, t, primary[t])), best[t], with_ci=False) for t in tasks],
        ]
        for model, lead in _group_cells(grouping, models)
    ]
    note = "Primary metric of each task (its first metric); best value in bold."
    return ["## Overview", "", note, "", *_table(headers, table_rows), ""]


def _performance_section(performance: pd.DataFrame) -> list[str]:
    def fmt(column: str, value: Any) -> str:
        if _missing(value):
            return DASH
        if column in ("model", "task"):
            return _escape(value)
        if column in ("n", "n_errors"):
            return str(int(value))
        return f"{float(value):.1f}"

    columns = [c for c in PERFORMANCE_COLUMNS if c in performance]
    rows = [[fmt(c, row[c]) for c in columns] for _, row in performance.iterrows()]
    headers = [_PERFORMANCE_HEADERS[c] for c in columns]
    return ["## Performance", "", *_table(headers, rows), ""]


def render_leaderboard(
    summary: pd.DataFrame,
    performance: pd.DataFrame | None = None,
    group_of: Callable[[str], str] | None = None,
) -> str:
    """Markdown: an overview (models × tasks), one table per task, and optionally performance.

    Task tables show ``value [ci_low, ci_high]`` per metric with the best value in bold
    (respecting ``higher_is_better``) and the number of samples ``n``. With ``group_of`` (a
    model's group: variants are reported under their base model) a table where a group holds
    several models gets a Group column: a task's groups in the order of their best model, its
    models in rank order beneath; the overview's by name.
    """
    overall = summary[summary["group_by"] == OVERALL]
    lines = ["# VLMHyperBench leaderboard", ""]
    if overall.empty:
        lines += ["No scores.", ""]
    else:
        lines += _overview(overall, group_of)
        for task in _ordered(overall["task"]):
            lines += _task_section(task, overall[overall["task"] == task], group_of)
    if performance is not None and not performance.empty:
        lines += _performance_section(performance)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_leaderboard(
    summary: pd.DataFrame, markdown_path: str | Path, performance: pd.DataFrame | None = None
) -> str:
    """Render and write the leaderboard atomically; returns the Markdown."""
    text = render_leaderboard(summary, performance)
    with atomic_write(markdown_path) as handle:
        handle.write(text)
    return text
