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
        lines = (workdir / f"results/judgements/judge_correct/judge-one/tiny-llava/{TASK}.jsonl")
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
