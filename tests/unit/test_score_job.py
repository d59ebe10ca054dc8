"""The score job reads no config: the plan hands it ``params.spec`` at parse time, and it scores
exactly what loading the experiment in the job (the way before) scored, per run block."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import REPO, make_workdir, read_yaml, write_yaml
from vlmhyperbench.config import load_experiment
from vlmhyperbench.datasets.manifest import Sample, read_manifest, write_manifest
from vlmhyperbench.metrics.score_job import run_score_job
from vlmhyperbench.metrics.scoring import score_predictions
from vlmhyperbench.pipeline.plan import Plan
from vlmhyperbench.pipeline.selection import select_samples

TASK = "demo_doc_class"
METRICS = ["accuracy", "macro_f1", "exact_match"]
LABELS = ["passport", "snils", "invoice"]


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plan:
    """Two run blocks on one task; the second overrides its synonyms, filters and limit."""
    workdir = make_workdir(tmp_path / "wd")
    monkeypatch.chdir(workdir)
    path = workdir / "config" / "config.yaml"
    config = read_yaml(path)
    config.pop("models")
    config.pop("tasks")
    config["scoring"] = {"bootstrap": 50, "seed": 7}
    block_task = {"synonyms": {"passport": ["паспорт РФ"]}, "filters": {"subset": ["blur"]}}
    config["runs"] = [
        {"models": ["tiny-llava"], "tasks": [TASK]},
        {
            "models": ["tiny-idefics3"],
            "tasks": [TASK],
            "limit": 5,
            "overrides": {"tasks": {TASK: block_task}},
        },
    ]
    write_yaml(path, config)
    plan = Plan(load_experiment(config_path=path, workdir=workdir))
    samples = [
        Sample(
            id=f"s{i}",
            answers=[LABELS[i % 3]],
            doc_class=LABELS[i % 3],
            subset=("clean", "blur")[i % 2],
        )
        for i in range(16)
    ]
    write_manifest(Path(plan.manifest(TASK)).parent, samples)
    answers = ["паспорт РФ", "снилс", "счёт", "паспорт", "invoice", "?"]
    # What each block's predict job answers: every sample, and the first 5 blurred ones.
    selections = {
        "tiny-llava": samples,
        "tiny-idefics3": [s for s in samples if s.subset == "blur"][:5],
    }
    for model, chosen in selections.items():
        lines = [
            {"id": s.id, "prediction": answers[i % len(answers)], "error": None}
            for i, s in enumerate(chosen)
            if i != 3  # no line: scored as missing
        ]
        lines[2] = {"id": lines[2]["id"], "prediction": None, "error": "HTTP 400"}
        write_lines(Path(plan.predictions(model, TASK)), lines)
    return plan


def write_lines(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def score_as_before(plan: Plan, model: str, metric: str, out: Path) -> dict:
    """What the score script did: load the experiment, narrow it to the pair, select, score."""
    experiment = plan.experiment.for_pair(model, TASK)
    entry = experiment.registry.metrics[metric]
    task = experiment.registry.tasks[TASK]
    return score_predictions(
        plan.predictions(model, TASK),
        plan.manifest(TASK),
        metric_name=entry.name,
        implementation=entry.implementation,
        aggregate_impl=entry.aggregate,
        params=entry.params,
        higher_is_better=entry.higher_is_better,
        model=model,
        task=task.name,
        out_parquet=out / f"{metric}.parquet",
        out_json=out / f"{metric}.json",
        n_boot=experiment.config.scoring.bootstrap,
        seed=experiment.config.scoring.seed,
        labels=task.labels or None,
        synonyms=task.synonyms,
        samples=select_samples(task, read_manifest(plan.manifest(TASK))),
    )


def score_from_spec(plan: Plan, model: str, metric: str, out: Path) -> dict:
    return run_score_job(
        json.loads(plan.score_spec(metric, TASK, model)),
        model=model,
        predictions=plan.predictions(model, TASK),
        manifest=plan.manifest(TASK),
        per_sample=str(out / f"{metric}.parquet"),
        aggregate=str(out / f"{metric}.json"),
    )


@pytest.mark.parametrize("model", ["tiny-llava", "tiny-idefics3"])
def test_the_spec_scores_what_the_loaded_experiment_scored(
    plan: Plan, model: str, tmp_path: Path
) -> None:
    for metric in METRICS:
        before = score_as_before(plan, model, metric, tmp_path / "before")
        after = score_from_spec(plan, model, metric, tmp_path / "after")
        assert after == before
        for ext in ("json", "parquet"):
            assert (tmp_path / "after" / f"{metric}.{ext}").read_bytes() == (
                tmp_path / "before" / f"{metric}.{ext}"
            ).read_bytes()
    # The block's selection reached the job: its limit of 5 of the blurred samples.
    frame = pd.read_parquet(tmp_path / "after" / "accuracy.parquet")
    if model == "tiny-idefics3":
        assert frame["id"].tolist() == ["s1", "s3", "s5", "s7", "s9"]
    else:
        assert frame["id"].tolist() == [f"s{i}" for i in range(16)]


def test_the_score_script_imports_no_config(plan: Plan, tmp_path: Path) -> None:
    """``scripts/score.py`` in a fresh interpreter, given what Snakemake's preamble gives it
    (a ``snakemake`` object; the preamble's own import of Snakemake is Snakemake's cost)."""
    job = {
        "params": {"spec": plan.score_spec("macro_f1", TASK, "tiny-llava")},
        "wildcards": {"model": "tiny-llava", "task": TASK, "metric": "macro_f1"},
        "input": {
            "predictions": plan.predictions("tiny-llava", TASK),
            "manifest": plan.manifest(TASK),
        },
        "output": {
            "per_sample": str(tmp_path / "m.parquet"),
            "aggregate": str(tmp_path / "m.json"),
        },
        "log": [str(tmp_path / "m.log")],
    }
    code = (
        "import json, runpy, sys\n"
        "from types import SimpleNamespace\n"
        f"job = json.loads({json.dumps(job)!r})\n"
        "fields = {k: v if k == 'log' else SimpleNamespace(**v) for k, v in job.items()}\n"
        f"runpy.run_path({str(REPO / 'scripts' / 'score.py')!r},"
        " init_globals={'snakemake': SimpleNamespace(**fields)})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert "vlmhyperbench.metrics.scoring" in modules
    assert {m.split(".")[0] for m in modules} & {"snakemake", "yaml", "jinja2"} == set()
    assert not any(m.startswith("vlmhyperbench.config") for m in modules)
    assert json.loads((tmp_path / "m.json").read_text("utf-8"))["metric"] == "macro_f1"
    assert "macro_f1 on tiny-llava/demo_doc_class: " in (tmp_path / "m.log").read_text("utf-8")


def test_a_combination_outside_the_run_matrix_has_no_spec(plan: Plan) -> None:
    with pytest.raises(ValueError, match="'cer' is not a metric of the task 'demo_doc_class'"):
        plan.score_spec("cer", TASK, "tiny-llava")
    with pytest.raises(KeyError, match="not in the run matrix"):
        plan.score_spec("accuracy", "demo_field_vqa", "tiny-llava")


def test_one_spec_per_block(plan: Plan) -> None:
    first = plan.score_spec("accuracy", TASK, "tiny-llava")
    second = plan.score_spec("accuracy", TASK, "tiny-idefics3")
    assert json.loads(first)["task"]["limit"] is None
    assert json.loads(second)["task"]["limit"] == 5
    assert json.loads(second)["scoring"] == {"bootstrap": 50, "seed": 7}
    assert json.loads(first)["task"]["synonyms"]["passport"] == ["паспорт"]
    assert json.loads(second)["task"]["synonyms"]["passport"] == ["паспорт РФ"]
    assert json.loads(second)["task"]["filters"]["subset"] == ["blur"]
    assert json.loads(second)["metric"] == {
        "name": "accuracy",
        "implementation": "vlmhyperbench.metrics.classification:accuracy",
        "aggregate": None,
        "params": {},
        "higher_is_better": True,
    }
