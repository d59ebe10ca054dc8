"""Summary table, performance table and the Markdown leaderboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from vlmhyperbench.reporting.leaderboard import (
    performance_table,
    render_leaderboard,
    write_leaderboard,
)
from vlmhyperbench.reporting.summary import SUMMARY_COLUMNS, build_summary, write_summary


def _stat(value: float, low: float, high: float, n: int) -> dict[str, Any]:
    return {"value": value, "ci_low": low, "ci_high": high, "n": n}


def _score_json(
    path: Path,
    *,
    model: str,
    metric: str,
    overall: dict[str, Any],
    groups: dict[str, Any] | None = None,
    higher_is_better: bool = True,
    task: str = "docvqa",
) -> Path:
    payload = {
        "metric": metric,
        "model": model,
        "task": task,
        "higher_is_better": higher_is_better,
        "params": {},
        "n": overall["n"],
        "n_errors": 0,
        "error_rate": 0.0,
        "overall": overall,
        "groups": groups or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload), "utf-8")
    return path


@pytest.fixture
def two_scores(tmp_path: Path) -> list[Path]:
    return [
        _score_json(
            tmp_path / "a" / "anls.json",
            model="model-a",
            metric="anls",
            overall=_stat(0.8, 0.7, 0.9, 10),
            groups={
                "doc_class": {
                    "snils": _stat(0.7, 0.5, 0.9, 5),
                    "passport": _stat(0.9, 0.8, 1.0, 5),
                }
            },
        ),
        _score_json(
            tmp_path / "b" / "anls.json",
            model="model-b",
            metric="anls",
            overall=_stat(0.6, 0.5, 0.7, 10),
        ),
    ]


def test_build_summary_long_table(two_scores: list[Path], tmp_path: Path) -> None:
    summary = build_summary(two_scores)
    assert list(summary.columns) == SUMMARY_COLUMNS
    rows = summary[["model", "group_by", "group", "value", "n"]].values.tolist()
    assert rows == [
        ["model-a", "overall", "all", 0.8, 10],
        ["model-a", "doc_class", "passport", 0.9, 5],
        ["model-a", "doc_class", "snils", 0.7, 5],
        ["model-b", "overall", "all", 0.6, 10],
    ]
    assert set(summary["task"]) == {"docvqa"} and set(summary["metric"]) == {"anls"}
    assert summary["higher_is_better"].all()
    assert summary.loc[0, "ci_low"] == 0.7 and summary.loc[0, "ci_high"] == 0.9

    write_summary(summary, tmp_path / "s" / "summary.parquet", tmp_path / "s" / "summary.csv")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s" / "summary.parquet"), summary)
    assert pd.read_csv(tmp_path / "s" / "summary.csv")["value"].tolist() == [0.8, 0.9, 0.7, 0.6]


def test_build_summary_rejects_duplicates(two_scores: list[Path]) -> None:
    with pytest.raises(ValueError, match="already read from"):
        build_summary([two_scores[0], two_scores[0]])


def test_leaderboard_bold_best_ci_and_n(two_scores: list[Path], tmp_path: Path) -> None:
    markdown = render_leaderboard(build_summary(two_scores))
    lines = markdown.splitlines()
    assert "| Model | anls ↑ | n |" in lines
    assert "| model-a | **0.800** [0.70, 0.90] | 10 |" in lines
    assert "| model-b | 0.600 [0.50, 0.70] | 10 |" in lines
    # Overview: models × tasks with the primary metric, best in bold.
    assert "| Model | docvqa (anls ↑) |" in lines
    assert "| model-a | **0.800** |" in lines
    assert "| model-b | 0.600 |" in lines
    assert "## Performance" not in markdown

    written = write_leaderboard(build_summary(two_scores), tmp_path / "lb" / "leaderboard.md")
    assert (tmp_path / "lb" / "leaderboard.md").read_text("utf-8") == written == markdown


def test_leaderboard_lower_is_better_ties_and_missing(tmp_path: Path) -> None:
    paths = [
        _score_json(
            tmp_path / "1.json", model="m1", metric="anls", overall=_stat(0.5, 0.4, 0.6, 4)
        ),
        _score_json(
            tmp_path / "2.json",
            model="m1",
            metric="cer",
            overall=_stat(0.30, 0.2, 0.4, 4),
            higher_is_better=False,
        ),
        _score_json(
            tmp_path / "3.json", model="m2", metric="anls", overall=_stat(0.5, 0.3, 0.7, 4)
        ),
        _score_json(
            tmp_path / "4.json",
            model="m2",
            metric="cer",
            overall=_stat(0.10, 0.05, 0.2, 4),
            higher_is_better=False,
        ),
        _score_json(
            tmp_path / "5.json",
            model="m3",
            metric="anls",
            overall={"value": None, "ci_low": None, "ci_high": None, "n": 0},
        ),
    ]
    lines = render_leaderboard(build_summary(paths)).splitlines()
    assert "| Model | anls ↑ | cer ↓ | n |" in lines
    # Equal anls: both bold; cer: lower wins; a missing value is a dash and ranks last.
    assert "| m1 | **0.500** [0.40, 0.60] | 0.300 [0.20, 0.40] | 4 |" in lines
    assert "| m2 | **0.500** [0.30, 0.70] | **0.100** [0.05, 0.20] | 4 |" in lines
    assert "| m3 | — | — | 0 |" in lines
    assert lines.index("| m3 | — | — | 0 |") > lines.index(
        "| m1 | **0.500** [0.40, 0.60] | 0.300 [0.20, 0.40] | 4 |"
    )


def _prediction_line(
    i: int, latency: float, ttft: float, tokens: int, error: str | None = None
) -> str:
    record = {
        "id": f"s{i}",
        "prediction": None if error else "x",
        "error": error,
        "performance": {"latency_ms": latency, "ttft_ms": ttft, "completion_tokens": tokens},
    }
    return json.dumps(record) + "\n"


def test_performance_table_and_leaderboard_section(two_scores: list[Path], tmp_path: Path) -> None:
    path = tmp_path / "predictions" / "model-a" / "docvqa.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(
        _prediction_line(1, 100, 10, 10)
        + _prediction_line(2, 200, 20, 40)
        + _prediction_line(3, 300, 30, 30)
        + _prediction_line(4, 400, 40, 40)
        + _prediction_line(5, 9999, 9999, 0, error="timeout"),
        "utf-8",
    )
    table = performance_table([path])
    row = table.iloc[0]
    assert (row["model"], row["task"], row["n"], row["n_errors"]) == ("model-a", "docvqa", 5, 1)
    # numpy linear percentiles of [100, 200, 300, 400]: p50 = 250, p95 = 300 + 0.85·100.
    assert row["latency_p50_ms"] == pytest.approx(250.0)
    assert row["latency_p95_ms"] == pytest.approx(385.0)
    assert row["ttft_mean_ms"] == pytest.approx(25.0)
    # tokens/s per request: 100, 200, 100, 100.
    assert row["tokens_per_s_mean"] == pytest.approx(125.0)

    markdown = render_leaderboard(build_summary(two_scores), table)
    assert "## Performance" in markdown
    assert "| model-a | docvqa | 5 | 1 | 250.0 | 385.0 | 25.0 | 125.0 |" in markdown.splitlines()


def test_empty_summary_renders() -> None:
    markdown = render_leaderboard(build_summary([]))
    assert "No scores." in markdown


def test_leaderboard_n_counts_samples_not_field_rows(tmp_path: Path) -> None:
    paths = [
        _score_json(
            tmp_path / "v.json",
            model="m",
            metric="json_validity",
            task="ext",
            overall=_stat(0.5, 0.4, 0.6, 30),
        ),
        _score_json(
            tmp_path / "f.json",
            model="m",
            metric="field_accuracy",
            task="ext",
            overall={**_stat(0.25, 0.2, 0.3, 200), "n_samples": 30},
        ),
    ]
    summary = build_summary(paths)
    assert summary.set_index("metric").loc["field_accuracy", ["n", "n_samples"]].tolist() == [
        200,
        30,
    ]
    table = render_leaderboard(summary)
    row = next(line for line in table.splitlines() if line.startswith("| m |") and "0.250" in line)
    assert row.rstrip("| ").endswith("30")
