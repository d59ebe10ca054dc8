"""Real snakemake runs with the run matrix and the Tesseract baseline: a dry run plans exactly
the listed pairs, a machine without Tesseract's data stops before any job, and the OCR task's
summary shows the engine's CER by distortion subset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.helpers import (
    REPO,
    job_counts,
    make_workdir,
    read_yaml,
    score_jobs,
    snakemake,
    write_yaml,
)

pytestmark = pytest.mark.slow

TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")


def workdir_with(root: Path, runs: list[dict[str, Any]], **overrides: Any) -> Path:
    workdir = make_workdir(root)
    path = workdir / "config" / "config.yaml"
    config = read_yaml(path)
    config.pop("models")
    config.pop("tasks")
    config["runs"] = runs
    for kind, entries in overrides.items():
        config["overrides"].setdefault(kind, {}).update(entries)
    write_yaml(path, config)
    return workdir


def test_dry_run_plans_exactly_the_listed_pairs(tmp_path: Path) -> None:
    workdir = workdir_with(
        tmp_path / "wd",
        runs=[
            {"models": ["tiny-llava", "tiny-idefics3"], "tasks": ["demo_field_vqa"]},
            {"models": ["tiny-llava"], "tasks": ["demo_doc_class", "demo_ocr"]},
            {"models": ["tesseract-rus"], "tasks": ["demo_ocr"]},
        ],
    )
    dry = snakemake(workdir, "-n").stdout
    counts = job_counts(dry)
    assert {k: v for k, v in counts.items() if k.startswith("predict_")} == {
        "predict_tiny-llava": 3,
        "predict_tiny-idefics3": 1,
        "predict_tesseract-rus": 1,
    }
    # vqa: exact_match, anls, cer; classification: accuracy, macro_f1, exact_match;
    # ocr: cer, wer, cer_corpus (twice)
    metrics = score_jobs(dry)
    assert metrics["cer"] == 4  # 2 × demo_field_vqa + 2 × demo_ocr
    assert metrics["accuracy"] == 1 and metrics["wer"] == 2
    assert counts["score"] == sum(metrics.values()) == 2 * 3 + 3 + 2 * 3


def test_missing_tesseract_data_stops_before_any_job(tmp_path: Path) -> None:
    missing = tmp_path / "no-tessdata"
    workdir = workdir_with(
        tmp_path / "wd",
        runs=[{"models": ["tesseract-rus"], "tasks": ["demo_ocr"]}],
        models={"tesseract-rus": {"source": {"path": str(missing)}}},
    )
    result = snakemake(workdir, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "model 'tesseract-rus' (backend tesseract) needs rus.traineddata" in output
    assert "apt-get install tesseract-ocr tesseract-ocr-rus tesseract-ocr-eng" in output
    assert "Traceback" not in output
    assert not (workdir / "data").exists() and not (workdir / "results").exists()


@pytest.mark.skipif(
    not (TESSDATA / "rus.traineddata").is_file(),
    reason="apt-get install tesseract-ocr tesseract-ocr-rus",
)
def test_tesseract_cer_by_distortion_subset(tmp_path: Path) -> None:
    pytest.importorskip("tesserocr")
    # The demo's OCR pages, 2 documents per class instead of 7: every subset, a third the time.
    workdir = workdir_with(
        tmp_path / "wd",
        runs=[{"models": ["tesseract-rus"], "tasks": ["demo_ocr"]}],
        datasets={"demo_docs_ocr": {"source": {"params": {"per_class": 2}}}},
    )
    snakemake(workdir)
    summary = pd.read_csv(workdir / "results" / "summary.csv")
    cer = summary[
        (summary.model == "tesseract-rus")
        & (summary.task == "demo_ocr")
        & (summary.metric == "cer")
        & (summary.group_by == "subset")
    ].set_index("group")["value"]
    params = read_yaml(REPO / "config" / "datasets" / "demo_docs_ocr.yaml")["source"]["params"]
    assert set(cer.index) == set(params["subsets"]) == {"clean", "blur", "rotated"}
    assert cer["clean"] < 0.2
    assert cer.drop("clean").max() > cer["clean"]
    predictions = pd.read_json(
        workdir / "results" / "predictions" / "tesseract-rus" / "demo_ocr.jsonl", lines=True
    )
    assert predictions.error.isna().all()
    assert (predictions.performance.map(lambda p: p["completion_tokens"]) > 10).all()
