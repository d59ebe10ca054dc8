"""Collect score JSONs into one long table (one row per model × task × metric × group)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from vlmhyperbench.runtime.io import atomic_write

SUMMARY_COLUMNS = [
    "model",
    "task",
    "metric",
    "group_by",
    "group",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "n_samples",
    "higher_is_better",
    "n_errors",
    "error_rate",
]
OVERALL = "overall"
ALL = "all"


def _rows(score: dict[str, Any]) -> list[dict[str, Any]]:
    base = {
        "model": score["model"],
        "task": score["task"],
        "metric": score["metric"],
        "higher_is_better": bool(score["higher_is_better"]),
    }
    stats = [(OVERALL, ALL, score["overall"])]
    for group_by, groups in score.get("groups", {}).items():
        stats.extend((group_by, group, groups[group]) for group in sorted(groups))
    return [
        {
            **base,
            "group_by": group_by,
            "group": group,
            "value": entry.get("value"),
            "ci_low": entry.get("ci_low"),
            "ci_high": entry.get("ci_high"),
            "n": entry.get("n"),
            # n counts scored rows (per field for field metrics); n_samples counts samples.
            "n_samples": entry.get("n_samples", entry.get("n")),
            # Failed predictions in the group (scored as wrong); older score files lack them.
            "n_errors": entry.get(
                "n_errors", score.get("n_errors") if group_by == OVERALL else None
            ),
            "error_rate": entry.get(
                "error_rate", score.get("error_rate") if group_by == OVERALL else None
            ),
        }
        for group_by, group, entry in stats
    ]


def build_summary(score_json_paths: Iterable[str | Path]) -> pd.DataFrame:
    """Long table of every score JSON, in the order given (the leaderboard keeps that order).

    The same model × task × metric twice is an error naming both files.
    """
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str], Path] = {}
    for path in map(Path, score_json_paths):
        score = json.loads(path.read_text(encoding="utf-8"))
        key = (score["model"], score["task"], score["metric"])
        if key in seen:
            raise ValueError(f"{path}: model/task/metric {key} already read from {seen[key]}")
        seen[key] = path
        rows.extend(_rows(score))
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for column in ("value", "ci_low", "ci_high", "error_rate"):
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    frame["n"] = frame["n"].astype("int64")
    frame["n_samples"] = frame["n_samples"].astype("int64")
    frame["n_errors"] = pd.to_numeric(frame["n_errors"]).astype("Int64")
    frame["higher_is_better"] = frame["higher_is_better"].astype(bool)
    return frame


def write_summary(frame: pd.DataFrame, parquet_path: str | Path, csv_path: str | Path) -> None:
    """Write the summary as Parquet and CSV, each atomically."""
    with atomic_write(parquet_path, "wb") as handle:
        frame.to_parquet(handle, index=False)
    with atomic_write(csv_path, newline="") as handle:
        frame.to_csv(handle, index=False)
