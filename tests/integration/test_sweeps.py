"""Sweeps in real Snakemake runs: the grid's variants are planned once each, an edit re-plans
only the variants it changes, variants that differ only in what is sent per request share one
server (the model loads once), and an engine setting gets a server per value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import job_counts, jobs_by_wildcard, make_workdir, snakemake, write_runs
from tests.integration.test_shared_server import loads_under

pytestmark = pytest.mark.slow

TASK = "demo_field_vqa"
PROMPTS = {
    "terse": "Ответь только значением поля.",
    "polite": "Пожалуйста, прочитай поле документа и ответь его значением.",
    "english": "Answer with the field's value only.",
}


def predict_jobs(output: str) -> dict[str, int]:
    """Predict jobs per model (variant) in a dry run's listing."""
    return jobs_by_wildcard(output, "predict_", "model")


def test_nine_variants_plan_once_each_and_an_edit_replans_only_what_it_changes(
    tmp_path: Path,
) -> None:
    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava"], tasks=[TASK])
    block = {
        "models": ["tiny-llava"],
        "tasks": [TASK],
        "limit": 2,
        "sweep": {
            "tasks.prompt.system": PROMPTS,
            "tasks.generation.max_tokens": [3, 4, 5],
        },
    }
    write_runs(workdir, block)
    dry = snakemake(workdir, "-n")
    planned = predict_jobs(dry.stdout)
    assert len(planned) == 9 and set(planned.values()) == {1}, planned
    assert "tiny-llava@max_tokens=4,system=polite" in planned
    # all are sent per request: one server, and one predict rule with a job per variant
    counts = job_counts(dry.stdout)
    assert (counts["serve_tiny-llava"], counts["predict_tiny-llava"]) == (1, 9)

    # the predict jobs alone: no scores are needed to show what an edit re-runs
    snakemake(workdir, *(f"results/predictions/{name}/{TASK}.jsonl" for name in planned))
    block["sweep"]["tasks.generation.max_tokens"] = [3, 4, 6]
    write_runs(workdir, block)
    replanned = predict_jobs(snakemake(workdir, "-n").stdout)
    assert sorted(replanned) == sorted(
        f"tiny-llava@max_tokens=6,system={label}" for label in PROMPTS
    ), replanned


def test_prompt_variants_share_one_server_and_an_engine_setting_gets_one_per_value(
    tmp_path: Path,
) -> None:
    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava"], tasks=[TASK])
    write_runs(
        workdir,
        {
            "models": ["tiny-llava"],
            "tasks": [TASK],
            "limit": 2,
            "sweep": {"tasks.prompt.system": PROMPTS},
        },
        {
            "models": ["tiny-idefics3"],
            "tasks": [TASK],
            "limit": 2,
            "sweep": {"models.engine_args.torch_threads": [1, 2, 3]},
        },
    )
    result = snakemake(workdir)
    counts = job_counts(result.stdout + result.stderr)
    serve_jobs = sorted(job for job in counts if job.startswith("serve_"))
    assert serve_jobs == [
        "serve_tiny-idefics3",  # torch_threads 1 is the registry entry's own value
        "serve_tiny-idefics3@torch_threads=2",
        "serve_tiny-idefics3@torch_threads=3",
        "serve_tiny-llava",
    ]
    assert loads_under(workdir / "logs") == {"tiny-llava": 1, "tiny-idefics3": 3}

    llava = sorted(
        p.parent.name for p in workdir.glob(f"results/predictions/tiny-llava*/{TASK}.jsonl")
    )
    assert llava == [f"tiny-llava@system={label}" for label in sorted(PROMPTS)]
    for label, system in PROMPTS.items():
        path = workdir / "results" / "predictions" / f"tiny-llava@system={label}" / f"{TASK}.jsonl"
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert len(records) == 2 and {r["prompt"]["system"] for r in records} == {system}

    variants = json.loads((workdir / "results" / "variants.json").read_text(encoding="utf-8"))
    terse = variants["variants"]["tiny-llava@system=terse"]
    assert terse["base"] == "tiny-llava" and terse["server"] == "tiny-llava"
    assert terse["settings"] == {"tasks.prompt.system": PROMPTS["terse"]}
    threads = variants["variants"]["tiny-idefics3@torch_threads=3"]
    assert threads["server"] == "tiny-idefics3@torch_threads=3"
    assert threads["settings"] == {"models.engine_args.torch_threads": 3}
    summary = (workdir / "results" / "summary.csv").read_text(encoding="utf-8")
    assert "tiny-llava@system=polite" in summary and "tiny-idefics3@torch_threads=2" in summary
