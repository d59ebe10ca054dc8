"""One model server per model per run (issue 17): a serve job started once, shared by all of the
model's predict jobs, capped at the configured concurrency, and given its own GPUs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.helpers import job_counts, make_workdir, snakemake

pytestmark = pytest.mark.slow

MODELS = ["tiny-llava", "tiny-idefics3"]
TASKS = ["demo_field_vqa", "demo_doc_class"]
LOADED = re.compile(r" loaded (\S+) \(.* in \d+\.\d+s")


def loads_under(logs: Path) -> dict[str, int]:
    """How often each model was loaded, from the wrapper's "loaded <model> … in <s>s" lines
    anywhere under ``logs``."""
    counts: dict[str, int] = {}
    for path in logs.rglob("*.log"):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if match := LOADED.search(line):
                counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def batch_sizes(workdir: Path, model: str) -> list[int]:
    sizes = []
    for path in (workdir / "results" / "predictions" / model).glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            sizes.append(json.loads(line)["performance"]["batch_size"])
    return sizes


def test_each_model_is_loaded_once_for_all_its_tasks(tmp_path: Path) -> None:
    concurrency = 2
    workdir = make_workdir(
        tmp_path / "wd", models=MODELS, tasks=TASKS, inference={"concurrency": concurrency}
    )
    result = snakemake(workdir)
    counts = job_counts(result.stdout + result.stderr)
    for model in MODELS:
        assert counts[f"serve_{model}"] == 1 and counts[f"predict_{model}"] == len(TASKS)
    assert loads_under(workdir / "logs") == dict.fromkeys(MODELS, 1)
    # Each predict job sends `concurrency` requests at once; the server admits that many in all
    # (the hf backend batches what it admits, so no batch is larger).
    for model in MODELS:
        sizes = batch_sizes(workdir, model)
        assert len(sizes) > 40 and max(sizes) <= concurrency, (model, max(sizes))
    assert not list((workdir / "results" / ".servers").glob("*.wanted"))

    # A new task runs alone with its model's server; the other tasks' predictions stay.
    config = workdir / "config" / "config.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "- demo_doc_class\n", "- demo_doc_class\n- demo_page_order\n"
        ),
        encoding="utf-8",
    )
    dry = snakemake(workdir, "-n")
    counts = job_counts(dry.stdout + dry.stderr)
    for model in MODELS:
        assert counts[f"serve_{model}"] == 1 and counts[f"predict_{model}"] == 1


def test_two_models_on_two_gpus_get_different_devices(tmp_path: Path) -> None:
    """A machine declared to have 2 GPUs (``--resources gpu=2``, ``CUDA_VISIBLE_DEVICES=0,1``;
    the tiny models still run on the CPU): both servers run at once, each on its own GPU."""
    workdir = make_workdir(
        tmp_path / "wd",
        models=MODELS,
        tasks=TASKS[1:],
        overrides={"models": {m: {"resources": {"gpu": 1}} for m in MODELS}},
    )
    # Models and data first, so that both models' groups are ready at the same moment.
    inputs = [f"models/tiny/{m}" for m in MODELS]
    snakemake(workdir, *inputs, "data/demo_docs_classification/manifest.jsonl")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1"}
    snakemake(workdir, "--resources", "gpu=2", env=env)
    devices = {}
    for model in MODELS:
        log = (workdir / "logs" / "serve" / f"{model}.log").read_text(encoding="utf-8")
        (found,) = re.findall(r"gets CUDA_VISIBLE_DEVICES=(\S+)", log)
        devices[model] = found
    assert sorted(devices.values()) == ["0", "1"], devices
