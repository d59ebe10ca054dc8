"""Metrics through real snakemake runs: a plugin metric from another package (entry points) used
from a registry YAML like a built-in one, the new built-in metrics end to end, and editing one
metric's source re-running only that metric's score jobs (+ summarize + report).

One full run on a small config (one tiny model, one task), then source edits + runs/dry runs.
The plugin package (tests/plugins/site) is copied to a temporary folder and put on PYTHONPATH;
its dist-info carries the entry points, so no pip install and no network are needed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import job_counts, make_workdir, score_jobs, snakemake, write_yaml

pytestmark = pytest.mark.slow

PLUGIN_SITE = Path(__file__).resolve().parents[1] / "plugins" / "site"
MODEL = "tiny-llava"
TASK = "demo_field_vqa"
BUILTIN = ["exact_match", "anls", "vqa_accuracy", "cer_corpus", "bleu", "latency_p50", "error_rate"]
PLUGIN = ["char_overlap", "length_ratio"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("plugin") / "site"
    shutil.copytree(PLUGIN_SITE, site)
    return site


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, site: Path) -> Path:
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), previous]))
    try:
        workdir = make_workdir(
            tmp_path_factory.mktemp("metric_plugins"),
            models=[MODEL],
            tasks=[TASK],
            overrides={"tasks": {TASK: {"metrics": BUILTIN + PLUGIN}}},
        )
        metrics = workdir / "config" / "metrics"
        # Exactly like a built-in entry, but naming the entry point instead of an import path.
        write_yaml(
            metrics / "char_overlap.yaml",
            {"implementation": "char_overlap", "task_kinds": ["vqa"]},
        )
        write_yaml(
            metrics / "length_ratio.yaml",
            {
                "implementation": "length_ratio",
                "params": {"cap": 2.0},
                "higher_is_better": False,
                "task_kinds": ["vqa"],
            },
        )
        snakemake(workdir)
        yield workdir
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


def score_json(workdir: Path, metric: str) -> Path:
    return workdir / "results" / "scores" / MODEL / TASK / f"{metric}.json"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_plugin_and_builtin_metrics_are_scored(workdir: Path) -> None:
    manifest = workdir / "data" / "demo_docs_vqa" / "manifest.jsonl"
    n = len(manifest.read_text(encoding="utf-8").splitlines())
    for metric in BUILTIN + PLUGIN:
        score = json.loads(score_json(workdir, metric).read_text(encoding="utf-8"))
        assert score["n"] == n, metric
        assert score["overall"]["value"] is not None, metric
        assert "field" in score["groups"], metric
    plugin = json.loads(score_json(workdir, "char_overlap").read_text(encoding="utf-8"))
    assert plugin["implementation"] == "char_overlap"
    assert 0.0 <= plugin["overall"]["value"] <= 1.0
    ratio = json.loads(score_json(workdir, "length_ratio").read_text(encoding="utf-8"))
    assert ratio["params"] == {"cap": 2.0} and ratio["higher_is_better"] is False
    # The plugin's per-row values are its function's values on the stored predictions.
    rows = pd.read_parquet(score_json(workdir, "char_overlap").with_suffix(".parquet"))
    letters = ["".join(c for c in str(p).lower() if c.isalnum()) for p in rows["prediction"]]
    refs = ["".join(c for c in str(r).lower() if c.isalnum()) for r in rows["reference"]]
    expected = [len(set(p) & set(r)) / len(set(r)) for p, r in zip(letters, refs, strict=True)]
    assert rows["value"].tolist() == pytest.approx(expected)
    summary = pd.read_csv(workdir / "results" / "summary.csv")
    assert set(PLUGIN) <= set(summary["metric"])


def test_editing_one_metric_reruns_only_its_score_jobs(workdir: Path, site: Path) -> None:
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout
    scores = {m: score_json(workdir, m) for m in BUILTIN + PLUGIN}
    before = {m: p.stat().st_mtime_ns for m, p in scores.items()}

    source = site / "vlmhb_demo_metrics" / "scores.py"
    # A comment or docstring edit changes nothing that is computed: nothing re-runs.
    edit(source, '"""Share of the reference', '"""The share of the reference')
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout

    edit(source, "best = max(best, score)", "best = max(best, score, 0.0)")
    dry = snakemake(workdir, "-n")
    assert job_counts(dry.stdout) == {"score": 1, "summarize": 1, "report": 1, "all": 1}
    assert score_jobs(dry.stdout) == {"char_overlap": 1}
    snakemake(workdir)
    after = {m: p.stat().st_mtime_ns for m, p in scores.items()}
    assert [m for m in scores if after[m] != before[m]] == ["char_overlap"]
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout


def test_editing_a_shared_helper_reruns_every_metric_using_it(workdir: Path, site: Path) -> None:
    source = site / "vlmhb_demo_metrics" / "scores.py"
    edit(source, "if ch.isalnum())", "if ch.isalnum() or ch == '№')")
    dry = snakemake(workdir, "-n")
    assert job_counts(dry.stdout) == {"score": 2, "summarize": 1, "report": 1, "all": 1}
    assert score_jobs(dry.stdout) == {"char_overlap": 1, "length_ratio": 1}


def test_unknown_plugin_name_fails_the_score_job_with_a_clear_message(workdir: Path) -> None:
    write_yaml(
        workdir / "config" / "metrics" / "char_overlap.yaml",
        {"implementation": "char_overlapp", "task_kinds": ["vqa"]},
    )
    # The changed entry changes the score fingerprint: its job re-runs, and fails.
    target = str(score_json(workdir, "char_overlap").relative_to(workdir))
    result = snakemake(workdir, target, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "'char_overlapp': no entry point of that name in the group 'vlmhyperbench.metrics'" in (
        output + "".join(p.read_text() for p in (workdir / "logs" / "score").rglob("*.log"))
    )
