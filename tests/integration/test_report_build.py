"""The report from small synthetic results folders: what it writes, that the LaTeX compiles with
Debian's texlive, byte-identical rebuilds under another TZ/LANG, bad input, and --baseline. The
folder has serving performance and cost (perf JSONs, costs in variants.json) for task_00."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import pdflatex
from tests.synthetic_results import add_perf_results, write_synthetic_results
from vlmhyperbench.reporting.build import build_report
from vlmhyperbench.reporting.tables import leaderboard_table

SMALL = {"models": 3, "tasks": 2, "metrics": 3, "samples": 120}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_synthetic_results(tmp_path_factory.mktemp("synthetic") / "results", **SMALL)
    return add_perf_results(root)


@pytest.fixture(scope="module")
def report(results: Path) -> Path:
    out = results.parent / "report"
    build_report(results, out, n_boot=300)
    return out


def hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".snakemake_timestamp"  # Snakemake's directory marker
    }


def vlmhb(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "vlmhyperbench.cli", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600
    )


def test_the_report_holds_every_deliverable(report: Path) -> None:
    names = set(hashes(report))
    assert {"index.html", "leaderboard.md", "comparisons.csv", "provenance.json"} <= names
    assert {"tables/task_00_leaderboard.tex", "tables/comparisons.tex"} <= names
    assert "tables/robustness.tex" in names
    for kind in ("metrics", "groups", "severity", "pareto"):
        assert f"figures/task_00_{kind}.svg" in names and f"figures/task_00_{kind}.pdf" in names
    assert {
        "tables/perf_task_00.tex",
        "tables/cost_task_00.tex",
        "tables/cost_task_01.tex",
    } <= names
    for figure in ("perf_task_00", "cost_pareto_task_00"):
        assert f"figures/{figure}.svg" in names and f"figures/{figure}.pdf" in names
    comparisons = pd.read_csv(report / "comparisons.csv")
    # 3 models → 3 pairs, per metric and task.
    assert len(comparisons) == 3 * SMALL["metrics"] * SMALL["tasks"]
    binary = comparisons[comparisons["metric"] == "metric_00"]
    assert set(binary["test"]) == {"mcnemar_exact"}
    assert set(comparisons[comparisons["metric"] != "metric_00"]["test"]) == {
        "sign_flip_permutation"
    }
    assert (comparisons["p_holm"] >= comparisons["p_value"]).all()
    # The strongest model beats the weakest on the continuous metrics of this data.
    strong = comparisons[
        (comparisons["model_a"] == "model-02") & (comparisons["metric"] == "metric_01")
    ]
    assert strong["significant"].any()
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "beats" in page and "no difference detectable below" in page
    assert "Pareto front" in page and "Flip rate" in page and "Provenance" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    provenance = json.loads((report / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["run"]["started"] == "2026-01-02T03:04:05Z"
    assert provenance["jobs"]["model-00/task_00"]["model"]["hub_id"] == "org/model-00"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs Debian's texlive")
def test_every_table_compiles_with_texlive(report: Path, tmp_path: Path) -> None:
    tables = sorted((report / "tables").glob("*.tex"))
    assert len(tables) >= 4
    for table in tables:
        done = pdflatex(table.read_text(encoding="utf-8"), tmp_path, table.stem)
        assert done.returncode == 0, f"{table.name}:\n{done.stdout[-3000:]}"
        assert (tmp_path / f"{table.stem}.pdf").stat().st_size > 1000


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs Debian's texlive")
def test_cyrillic_and_special_characters_compile(tmp_path: Path) -> None:
    overall = pd.DataFrame(
        {
            "model": ["модель_А", "model&co"],
            "metric": ["точность_%", "точность_%"],
            "value": [0.8421, 0.5],
            "ci_low": [0.80, 0.41],
            "ci_high": [0.88, 0.59],
            "n_samples": [40, 40],
            "higher_is_better": [True, True],
        }
    )
    body = leaderboard_table("паспорт #1 {x}", overall, ["точность_%"], ["модель_А", "model&co"])
    assert r"\textbf{0.842} {\scriptsize[0.80, 0.88]}" in body
    done = pdflatex(body, tmp_path, "cyrillic")
    assert done.returncode == 0, done.stdout[-3000:]


def test_rebuild_is_byte_identical_under_another_time_zone_and_locale(
    results: Path, tmp_path: Path
) -> None:
    first = vlmhb("report", str(results), str(tmp_path / "a"), "--n-boot", "200")
    assert first.returncode == 0, first.stdout + first.stderr
    second = vlmhb(
        "report",
        str(results),
        str(tmp_path / "b"),
        "--n-boot",
        "200",
        env={"TZ": "Asia/Vladivostok", "LANG": "C", "LC_ALL": "C"},
    )
    assert second.returncode == 0, second.stdout + second.stderr
    a, b = hashes(tmp_path / "a"), hashes(tmp_path / "b")
    assert len(a) > 20
    assert a == b


def test_a_folder_without_a_summary_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "results" / "scores").mkdir(parents=True)
    done = vlmhb("report", str(tmp_path / "results"), str(tmp_path / "out"))
    assert done.returncode == 1
    assert "not a results folder" in done.stdout and "summary.parquet" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def _spoil(results: Path) -> None:
    """Every kind of gap the issue lists, in one folder."""
    scores = results / "scores"
    (scores / "model-00" / "task_00" / "metric_01.parquet").unlink()  # missing
    truncated = scores / "model-01" / "task_00" / "metric_02.parquet"
    truncated.write_bytes(truncated.read_bytes()[:100])  # truncated
    predictions = results / "predictions" / "model-02" / "task_01.jsonl"
    lines = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    predictions.write_text(
        "".join(
            json.dumps({k: v for k, v in r.items() if k != "performance"}) + "\n" for r in lines
        )
        + '{"id": "trunc',  # and a truncated last line
        encoding="utf-8",
    )
    failed = results / "predictions" / "model-01" / "task_01.jsonl"  # a model with all errors
    records = [json.loads(line) for line in failed.read_text(encoding="utf-8").splitlines()]
    failed.write_text(
        "".join(
            json.dumps({"id": r["id"], "prediction": None, "error": "HTTP 400: bad image"}) + "\n"
            for r in records
        ),
        encoding="utf-8",
    )
    table = pd.read_parquet(scores / "model-01" / "task_01" / "metric_00.parquet")
    table["value"], table["error"] = 0.0, "HTTP 400: bad image"
    table.to_parquet(scores / "model-01" / "task_01" / "metric_00.parquet", index=False)
    nan = pd.read_parquet(scores / "model-02" / "task_00" / "metric_01.parquet")
    nan.loc[:9, "value"] = float("nan")  # NaN values
    nan.to_parquet(scores / "model-02" / "task_00" / "metric_01.parquet", index=False)
    summary = pd.read_parquet(results / "summary.parquet")
    lonely = (summary["task"] == "task_01") & (summary["metric"] == "metric_02")
    summary = summary[~lonely | (summary["model"] == "model-00")]  # a metric with one model
    summary.loc[(summary["model"] == "model-02") & (summary["metric"] == "metric_02"), "value"] = (
        float("nan")
    )
    empty = summary[(summary["task"] == "task_00") & (summary["group_by"] == "overall")].copy()
    empty["task"], empty["value"], empty["n"], empty["n_samples"] = "empty_task", None, 0, 0
    summary = pd.concat([summary, empty], ignore_index=True)  # an empty task
    summary.to_parquet(results / "summary.parquet", index=False)
    (results / "provenance" / "model-00" / "task_01.json").unlink()  # an older job


def test_bad_input_gives_a_report_with_each_gap_named(results: Path, tmp_path: Path) -> None:
    spoiled = tmp_path / "results"
    shutil.copytree(results, spoiled)
    _spoil(spoiled)
    done = vlmhb("report", str(spoiled), str(tmp_path / "out"), "--n-boot", "100")
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout
    assert "scores/model-00/task_00/metric_01.parquet: score file missing" in output
    assert "scores/model-01/task_00/metric_02.parquet: unreadable" in output
    assert "predictions/model-02/task_01.jsonl" in output and "performance" in output
    assert "not valid JSON" in output
    assert "empty_task" in output
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "Gaps in the results" in page
    assert "metric_01.parquet: score file missing" in page
    assert "model-00 / task_01 — unknown (no record)" in page
    assert "HTTP N" in page  # the error kind of the all-errors model
    provenance = json.loads((tmp_path / "out" / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["jobs"]["model-00/task_01"] == "unknown"
    comparisons = pd.read_csv(tmp_path / "out" / "comparisons.csv")
    assert comparisons[
        (comparisons["task"] == "task_01") & (comparisons["metric"] == "metric_02")
    ].empty


def test_baseline_flags_a_regression_and_runs_only_one_side_has(
    results: Path, tmp_path: Path
) -> None:
    current = tmp_path / "current"
    shutil.copytree(results, current)
    worse = current / "scores" / "model-02" / "task_00" / "metric_01.parquet"
    table = pd.read_parquet(worse)
    table["value"] = table["value"] * 0.5  # the new engine halves the score
    table.to_parquet(worse, index=False)
    shutil.rmtree(current / "scores" / "model-00")
    summary = pd.read_parquet(current / "summary.parquet")
    summary[summary["model"] != "model-00"].to_parquet(current / "summary.parquet", index=False)

    out = tmp_path / "out"
    done = vlmhb("report", str(current), str(out), "--baseline", str(results), "--n-boot", "300")
    assert done.returncode == 0, done.stdout + done.stderr
    changes = pd.read_csv(out / "baseline.csv")
    row = changes[
        (changes["model"] == "model-02")
        & (changes["task"] == "task_00")
        & (changes["metric"] == "metric_01")
    ].iloc[0]
    assert row["verdict"] == "REGRESSION" and row["change"] < 0 and row["ci_high"] < 0
    same = changes[(changes["model"] == "model-01") & (changes["metric"] == "metric_01")]
    assert (same["change"] == 0).all() and (same["verdict"] == "no significant change").all()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "model model-00 only in the baseline" in page
    assert "REGRESSION" in page
