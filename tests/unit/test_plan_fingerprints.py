"""The plan memoizes fingerprints (planning 10,000 jobs asks for them many times): the memoized
values are exactly what :mod:`vlmhyperbench.pipeline.fingerprints` computes for each pair's own
entries, per run block, and they follow the dataset's content when it appears or changes."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import make_workdir, read_yaml, write_yaml
from vlmhyperbench.config import load_experiment
from vlmhyperbench.datasets.digest import dataset_digest
from vlmhyperbench.inference.prompts import TaskPrompts
from vlmhyperbench.pipeline.fingerprints import predict_fingerprint, score_fingerprint
from vlmhyperbench.pipeline.plan import Plan

TASK = "demo_doc_class"


def _plan(workdir: Path) -> Plan:
    path = workdir / "config" / "config.yaml"
    config = read_yaml(path)
    config.pop("models")
    config.pop("tasks")
    config["runs"] = [
        {"models": ["tiny-llava"], "tasks": [TASK]},
        # a block's task override changes what scoring compares with (synonyms)
        {
            "models": ["tiny-idefics3"],
            "tasks": [TASK],
            "overrides": {"tasks": {TASK: {"synonyms": {"passport": ["паспорт РФ"]}}}},
        },
    ]
    write_yaml(path, config)
    return Plan(load_experiment(config_path=path, workdir=workdir))


def _direct(plan: Plan, model: str, metric: str) -> tuple[str, str]:
    """Both fingerprints computed from scratch, without the plan's caches."""
    registry = plan.experiment.for_pair(model, TASK).registry
    task = registry.tasks[TASK]
    digest = dataset_digest(plan.manifest(TASK))
    predict = predict_fingerprint(
        registry.models[model],
        task,
        registry.datasets[task.dataset],
        TaskPrompts.load(task, registry.path_of("tasks", TASK)).fingerprint(),
        content=digest.sent if digest else None,
    )
    score = score_fingerprint(registry.metrics[metric], task, digest.manifest if digest else None)
    return predict, score


def test_memoized_fingerprints_equal_the_direct_ones_per_block(tmp_path: Path, monkeypatch) -> None:
    workdir = make_workdir(tmp_path / "wd")
    monkeypatch.chdir(workdir)
    plan = _plan(workdir)
    for _ in range(2):  # the second round is served from the caches
        for model in ("tiny-llava", "tiny-idefics3"):
            for metric in ("accuracy", "exact_match"):
                assert (
                    plan.predict_fingerprint(model, TASK),
                    plan.score_fingerprint(metric, TASK, model),
                ) == _direct(plan, model, metric)
    # the blocks differ in synonyms only: their score fingerprints differ
    assert plan.score_fingerprint("accuracy", TASK, "tiny-llava") != plan.score_fingerprint(
        "accuracy", TASK, "tiny-idefics3"
    )


def test_memoized_fingerprints_follow_the_data(tmp_path: Path, monkeypatch) -> None:
    """A dataset built during the run, then edited: each version gives its own fingerprints."""
    workdir = make_workdir(tmp_path / "wd")
    monkeypatch.chdir(workdir)
    plan = _plan(workdir)
    before = (
        plan.predict_fingerprint("tiny-llava", TASK),
        plan.score_fingerprint("accuracy", TASK, "tiny-llava"),
    )
    manifest = Path(plan.manifest(TASK))
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        '{"id": "a", "images": [], "question": "q", "answers": ["passport"]}\n', encoding="utf-8"
    )
    built = (
        plan.predict_fingerprint("tiny-llava", TASK),
        plan.score_fingerprint("accuracy", TASK, "tiny-llava"),
    )
    assert built[0] != before[0] and built[1] != before[1]
    assert built == _direct(plan, "tiny-llava", "accuracy")
    # an edited answer: a new manifest version re-scores, what is sent stays the same
    manifest.write_text(
        '{"id": "a", "images": [], "question": "q", "answers": ["snils"]}\n', encoding="utf-8"
    )
    os.utime(manifest, ns=(1, 1))
    edited = (
        plan.predict_fingerprint("tiny-llava", TASK),
        plan.score_fingerprint("accuracy", TASK, "tiny-llava"),
    )
    assert edited[0] == built[0] and edited[1] != built[1]
    assert edited == _direct(plan, "tiny-llava", "accuracy")
