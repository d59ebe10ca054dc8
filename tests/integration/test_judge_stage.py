"""Judge metrics in real Snakemake runs, with the stand-in judge behind an endpoint: one
request per judged sample, none on a re-run, exactly the edited sample after an edit, and a
second judge runs only its own jobs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.helpers import jobs_by_wildcard, make_workdir, read_yaml, snakemake, write_yaml
from tests.integration.test_judge_standin import standin

pytestmark = pytest.mark.slow

TASK = "demo_field_vqa"
JUDGE_PROMPT = (
    "Вопрос: {{ question }}\nЭталон: {{ answers | join(' | ') }}\n"
    "Ответ модели: {{ prediction }}\n"
    'Ответь JSON: {"verdict": "correct"} или {"verdict": "incorrect"}.'
)


def judge_entry(url: str) -> dict:
    return {"backend": "openai", "source": {"type": "hub", "id": "standin/judge"},
            "endpoint": {"base_url": url, "model": "standin-judge"}}  # fmt: skip


def setup(workdir: Path, urls: dict[str, str]) -> None:
    for name, url in urls.items():
        write_yaml(workdir / "config" / "models" / f"{name}.yaml", judge_entry(url))
    write_yaml(
        workdir / "config" / "metrics" / "judge_correct.yaml",
        {"judge": {"models": list(urls), "prompt": {"user": JUDGE_PROMPT}},
         "higher_is_better": True, "task_kinds": ["vqa"]},
    )  # fmt: skip
    config_path = workdir / "config" / "config.yaml"
    config = read_yaml(config_path)
    task = read_yaml(workdir / "config" / "tasks" / f"{TASK}.yaml")
    config["overrides"]["tasks"] = {TASK: {"metrics": [*task["metrics"], "judge_correct"],
                                           "limit": 4}}  # fmt: skip
    write_yaml(config_path, config)


def asked(url: str) -> list[dict]:
    root = url.removesuffix("/v1")
    requests = httpx.get(f"{root}/standin/requests").json()["requests"]
    httpx.delete(f"{root}/standin/requests")
    return requests


def test_judged_once_then_never_then_the_edited_sample_then_only_a_new_judge(
    tmp_path: Path,
) -> None:
    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava"], tasks=[TASK])
    with standin(tmp_path, name="one") as (one, _), standin(tmp_path, name="two") as (two, _):
        setup(workdir, {"judge-one": one})
        snakemake(workdir)
        assert len(asked(one)) == 4  # one request per judged sample
        score = json.loads(
            (workdir / f"results/scores/tiny-llava/{TASK}/judge_correct.json").read_text()
        )
        assert score["overall"]["n"] == 4  # the random tiny model's answers: all incorrect
        assert score["overall"]["value"] == 0.0
        lines = workdir / f"results/judgements/judge_correct/judge-one/tiny-llava/{TASK}.jsonl"
        judged = [json.loads(line) for line in lines.read_text().splitlines()]
        assert [j["label"] for j in judged] == ["incorrect"] * 4
        assert {j["judge_model"] for j in judged} == {"standin-judge"}

        snakemake(workdir)
        assert asked(one) == []  # a re-run asks nothing

        manifest = workdir / "data" / "demo_docs_vqa" / "manifest.jsonl"
        records = [json.loads(line) for line in manifest.read_text().splitlines()]
        first = next(r for r in records if r["id"] == judged[0]["id"])
        first["question"] += " (уточнение)"
        manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        snakemake(workdir)
        (request,) = asked(one)  # exactly the edited sample, re-asked
        assert "(уточнение)" in request["prompt"]

        setup(workdir, {"judge-one": one, "judge-two": two})
        dry = snakemake(workdir, "-n")
        judge_jobs = jobs_by_wildcard(dry.stdout, "judge_", "metric")
        assert judge_jobs == {"judge_correct": 1}  # judge-two's only
        assert "rule judge_judge-two:" in dry.stdout and "rule judge_judge-one:" not in dry.stdout
        assert jobs_by_wildcard(dry.stdout, "predict_", "model") == {}
        snakemake(workdir)
        assert len(asked(two)) == 4 and asked(one) == []


def test_a_served_tiny_judge_runs_in_its_serve_job_and_its_noise_is_invalid(
    tmp_path: Path,
) -> None:
    """The real served path: the judge is a tiny random-weight VLM behind its own serve job
    (the wrapper), loaded once; its replies are noise, so every verdict is ``invalid`` - left
    out of the score and counted, never a 0."""
    from tests.integration.test_shared_server import loads_under

    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava"], tasks=[TASK])
    tiny = read_yaml(workdir / "config" / "models" / "tiny-idefics3.yaml")
    write_yaml(workdir / "config" / "models" / "tiny-judge.yaml", tiny)
    setup(workdir, {})
    metric = workdir / "config" / "metrics" / "judge_correct.yaml"
    judge = {"models": ["tiny-judge"], "prompt": {"user": JUDGE_PROMPT}}
    write_yaml(metric, {**read_yaml(metric), "judge": judge})
    result = snakemake(workdir)
    output = result.stdout + result.stderr
    assert "rule serve_tiny-judge:" in output and "rule judge_tiny-judge:" in output
    assert loads_under(workdir / "logs") == {"tiny-llava": 1, "tiny-judge": 1}
    path = workdir / f"results/judgements/judge_correct/tiny-judge/tiny-llava/{TASK}.jsonl"
    judged = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(judged) == 4 and {j["status"] for j in judged} == {"invalid"}
    assert all(j["verdict"] is None and j["reply"] is not None for j in judged)
    score = json.loads(
        (workdir / f"results/scores/tiny-llava/{TASK}/judge_correct.json").read_text()
    )
    assert score["judges"]["tiny-judge"]["invalid_rate"] == 1.0
    assert score["overall"]["value"] is None or score["overall"]["value"] != 0.0
