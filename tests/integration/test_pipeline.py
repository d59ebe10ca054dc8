"""The whole pipeline through real snakemake runs: outputs, and that exactly what changed re-runs.

The tests in this module run in order on one workdir: a full run, a no-op re-run, adding a
metric, changing one task's prompt.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import (
    job_counts,
    make_workdir,
    read_yaml,
    score_jobs,
    snakemake,
    snakemake_command,
    write_yaml,
)

pytestmark = pytest.mark.slow

MODELS = ["tiny-llava", "tiny-idefics3"]
TASKS = ["demo_field_vqa", "demo_doc_class"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Start the VQA task without `cer` so a later test can add it.
    workdir = make_workdir(
        tmp_path_factory.mktemp("pipeline"),
        overrides={"tasks": {"demo_field_vqa": {"metrics": ["exact_match", "anls"]}}},
    )
    snakemake(workdir)
    return workdir


def set_override(workdir: Path, kind: str, name: str, value: dict) -> None:
    path = workdir / "config" / "config.yaml"
    config = read_yaml(path)
    config["overrides"].setdefault(kind, {})[name] = value
    write_yaml(path, config)


def snapshot(paths: list[Path]) -> dict[Path, tuple[int, bytes]]:
    return {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in paths}


def prediction_files(workdir: Path, tasks: list[str] = TASKS) -> list[Path]:
    return [workdir / "results" / "predictions" / m / f"{t}.jsonl" for m in MODELS for t in tasks]


def test_full_run_produces_summary_and_leaderboard(workdir: Path) -> None:
    summary = pd.read_csv(workdir / "results" / "summary.csv")
    overall = summary[summary["group_by"] == "overall"]
    assert set(overall["model"]) == set(MODELS)
    assert set(overall["task"]) == set(TASKS)
    assert set(overall["metric"]) >= {"exact_match", "anls", "accuracy", "macro_f1"}
    assert (overall["n"] > 0).all()
    # groups by doc_class / subset are present
    assert {"doc_class", "subset"} <= set(summary["group_by"])

    leaderboard = (workdir / "results" / "report" / "leaderboard.md").read_text(encoding="utf-8")
    for name in MODELS + TASKS:
        assert name in leaderboard

    manifest = [
        json.loads(x) for x in (workdir / "data" / "demo_docs_vqa" / "manifest.jsonl").open()
    ]
    for path in prediction_files(workdir):
        lines = [json.loads(x) for x in path.open(encoding="utf-8")]
        if path.stem == "demo_field_vqa":
            assert [x["id"] for x in lines] == [s["id"] for s in manifest]
        for line in lines:
            assert line["error"] is None, line
            performance = line["performance"]
            assert performance["latency_ms"] > 0
            assert performance["prompt_tokens"] > 0 and performance["completion_tokens"] > 0
            assert performance["ttft_ms"] <= performance["latency_ms"]


def test_second_run_has_nothing_to_do(workdir: Path) -> None:
    before = snapshot(prediction_files(workdir))
    result = snakemake(workdir, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr
    snakemake(workdir)
    assert snapshot(prediction_files(workdir)) == before


def test_another_interpreter_path_never_runs_a_serve_job_alone(
    workdir: Path, tmp_path: Path
) -> None:
    """The serve jobs' params hold the interpreter's path, which differs when the same venv is
    reached by another path: a score job to redo must not bring a serve job without its predict
    jobs (Snakemake would leave those out and never stop the service job: docs/execution.md)."""
    venv = Path(sys.executable).parent.parent
    (tmp_path / "venv").symlink_to(venv, target_is_directory=True)
    python = tmp_path / "venv" / "bin" / Path(sys.executable).name
    target = "results/scores/tiny-llava/demo_doc_class/accuracy.json"
    (workdir / target).unlink()
    command = [str(python), *snakemake_command(workdir, "-n", target)[1:]]
    dry = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=workdir)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert job_counts(dry.stdout) == {"score": 1}
    snakemake(workdir, target)
    assert (workdir / target).is_file()


def test_adding_a_metric_runs_only_its_score_jobs(workdir: Path) -> None:
    set_override(workdir, "tasks", "demo_field_vqa", {"metrics": ["exact_match", "anls", "cer"]})
    dry = snakemake(workdir, "-n")
    assert job_counts(dry.stdout) == {"score": 2, "summarize": 1, "report": 1, "all": 1}
    assert score_jobs(dry.stdout) == {"cer": 2}

    before = snapshot(prediction_files(workdir))
    snakemake(workdir)
    assert snapshot(prediction_files(workdir)) == before
    summary = pd.read_csv(workdir / "results" / "summary.csv")
    assert set(summary.loc[summary["metric"] == "cer", "model"]) == set(MODELS)


def test_changing_one_prompt_reruns_only_that_task(workdir: Path) -> None:
    set_override(
        workdir,
        "tasks",
        "demo_doc_class",
        {"prompt": {"user": "Тип документа? {{ labels | join('/') }}"}},
    )
    dry = snakemake(workdir, "-n")
    assert job_counts(dry.stdout) == {
        "serve_tiny-llava": 1,  # each model's server, once, for the one task that changed
        "serve_tiny-idefics3": 1,
        "predict_tiny-llava": 1,
        "predict_tiny-idefics3": 1,
        "score": 6,
        "summarize": 1,
        "report": 1,
        "all": 1,
    }
    assert score_jobs(dry.stdout) == {"accuracy": 2, "macro_f1": 2, "exact_match": 2}
    untouched = snapshot(prediction_files(workdir, ["demo_field_vqa"]))
    changed = snapshot(prediction_files(workdir, ["demo_doc_class"]))
    snakemake(workdir)
    assert snapshot(prediction_files(workdir, ["demo_field_vqa"])) == untouched
    after = snapshot(prediction_files(workdir, ["demo_doc_class"]))
    assert all(after[p][0] != changed[p][0] for p in changed)
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout
