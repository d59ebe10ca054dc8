"""Performance per model × task from the predictions, the Pareto front, and the error view."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from vlmhyperbench.reporting.results import Results

PERFORMANCE_COLUMNS = [
    "model",
    "task",
    "n",
    "n_errors",
    "error_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_p50_ms",
    "tpot_p50_ms",
    "tokens_per_s",
    "peak_memory_mb",
]
WORST_PER_MODEL = 5
TEXT_LIMIT = 300


def _percentile(values: np.ndarray, q: float) -> float:
    values = values[~np.isnan(values)]
    return float(np.percentile(values, q)) if values.size else math.nan


def performance_table(results: Results) -> pd.DataFrame:
    rows = []
    for (model, task), frame in sorted(results.predictions.items()):
        ok = frame[frame["error"].isna()]
        latency = ok["latency_ms"].to_numpy(dtype=float)
        tokens = ok["completion_tokens"].to_numpy(dtype=float)
        valid = (latency > 0) & ~np.isnan(tokens)
        rate = tokens[valid] / (latency[valid] / 1000.0)
        memory = ok["peak_memory_mb"].to_numpy(dtype=float)
        memory = memory[~np.isnan(memory)]
        n = len(frame)
        rows.append(
            {
                "model": model,
                "task": task,
                "n": n,
                "n_errors": n - len(ok),
                "error_rate": (n - len(ok)) / n if n else math.nan,
                "latency_p50_ms": _percentile(latency, 50),
                "latency_p95_ms": _percentile(latency, 95),
                "ttft_p50_ms": _percentile(ok["ttft_ms"].to_numpy(dtype=float), 50),
                "tpot_p50_ms": _percentile(ok["tpot_ms"].to_numpy(dtype=float), 50),
                "tokens_per_s": float(rate.mean()) if rate.size else math.nan,
                "peak_memory_mb": float(memory.max()) if memory.size else math.nan,
            }
        )
    return pd.DataFrame(rows, columns=PERFORMANCE_COLUMNS)


def pareto_front(quality: np.ndarray, latency: np.ndarray, higher: bool) -> np.ndarray:
    """True where no other point is at least as good on both axes and better on one."""
    q = quality if higher else -quality
    front = np.zeros(len(q), dtype=bool)
    for i in range(len(q)):
        if q[i] != q[i] or latency[i] != latency[i]:
            continue
        dominated = (q >= q[i]) & (latency <= latency[i]) & ((q > q[i]) | (latency < latency[i]))
        front[i] = not dominated.any()
    return front


def error_kind(error: str) -> str:
    """A short kind for an error message: its text before the first ':' or '(', numbers masked."""
    head = re.split(r"[:(\n]", error, maxsplit=1)[0].strip()
    return re.sub(r"\d+", "N", head)[:60] or "error"


def error_kinds(results: Results) -> pd.DataFrame:
    """Per model and task, how many samples failed with each kind of error (from the main
    metric's score file, which also counts samples with no prediction line)."""
    rows = []
    for (model, task, metric), scores in sorted(results.scores.items()):
        if metric != results.primary(task) or scores.text is None:
            continue
        errors = scores.text["error"]
        kinds = errors[errors != ""].map(error_kind).value_counts()
        for kind in sorted(kinds.index):
            rows.append({"model": model, "task": task, "kind": kind, "count": int(kinds[kind])})
    return pd.DataFrame(rows, columns=["model", "task", "kind", "count"])


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def worst_samples(results: Results, per_model: int = WORST_PER_MODEL) -> pd.DataFrame:
    """The lowest-scoring samples (highest for lower-is-better metrics) per model and task on
    the task's main metric; ties broken by sample id."""
    rows = []
    for (model, task, metric), scores in sorted(results.scores.items()):
        if metric != results.primary(task) or scores.text is None:
            continue
        text = scores.text.copy()
        higher = results.higher_is_better(task, metric)
        text["rank"] = text["value"] if higher else -text["value"]
        text = text[~text["value"].isna()].sort_values(["rank", "id"], kind="stable")
        for row in text.head(per_model).itertuples():
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "metric": metric,
                    "id": row.id,
                    "value": row.value,
                    "question": _clip(row.question),
                    "reference": _clip(row.reference),
                    "prediction": _clip(row.prediction),
                    "error": _clip(row.error),
                }
            )
    columns = ["model", "task", "metric", "id", "value", "question", "reference", "prediction"]
    return pd.DataFrame(rows, columns=[*columns, "error"])
