"""Judge metrics in real Snakemake runs, with the stand-in judge behind an endpoint: one
request per judged sample, none on a re-run, exactly the edited sample after an edit, and a
second judge runs only its own jobs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import (
    jobs_by_wildcard,
    make_workdir,
    read_yaml,
    snakemake,
    snakemake_command,
    write_yaml,
)
from tests.integration.test_judge_standin import standin

pytestmark = pytest.mark.slow

TASK = "demo_field_vqa"
SCORE = f"results/scores/tiny-llava/{TASK}/judge_correct.json"  # a target short of the report
JUDGE_PROMPT = (
    "Вопрос: {{ question }}\nЭталон: {{ answers | join(' | ') }}\n"
    "Ответ модели: {{ prediction }}\n"
    'Ответь JSON: {"verdict": "correct"} или {"verdict": "incorrect"}.'
)


def judge_entry(url: str) -> dict:
    return {"backend": "openai", "source": {"type": "hub", "id": "standin/judge"},
            "endpoint": {"base_url": url, "model": "standin-judge"}}  # fmt: skip


def setup(workdir: Path, urls: dict[str, str], limit: int = 4, **judge: object) -> None:
    for name, url in urls.items():
        write_yaml(workdir / "config" / "models" / f"{name}.yaml", judge_entry(url))
    write_yaml(
        workdir / "config" / "metrics" / "judge_correct.yaml",
        {"judge": {"models": list(urls), "prompt": {"user": JUDGE_PROMPT}, **judge},
         "higher_is_better": True, "task_kinds": ["vqa"]},
    )  # fmt: skip
    config_path = workdir / "config" / "config.yaml"
    config = read_yaml(config_path)
    task = read_yaml(workdir / "config" / "tasks" / f"{TASK}.yaml")
    config["overrides"]["tasks"] = {TASK: {"metrics": [*task["metrics"], "judge_correct"],
                                           "limit": limit}}  # fmt: skip
    write_yaml(config_path, config)


def judgements(workdir: Path, judge: str, model: str = "tiny-llava") -> list[dict]:
    path = workdir / f"results/judgements/judge_correct/{judge}/{model}/{TASK}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def hand_kappa_and_alpha(first: list[float], second: list[float]) -> tuple[float, float]:
    """Cohen's κ and Krippendorff's α (nominal, two coders, nothing missing) of two binary
    raters, from their definitions."""
    n = len(first)
    agree = sum(a == b for a, b in zip(first, second, strict=True)) / n
    p1, p2 = sum(first) / n, sum(second) / n
    chance = p1 * p2 + (1 - p1) * (1 - p2)
    kappa = (agree - chance) / (1 - chance)
    values = 2 * n  # α: the coincidences of the 2n values; d units disagree
    ones = sum(first) + sum(second)
    disagreements = sum(a != b for a, b in zip(first, second, strict=True))
    alpha = 1 - (values - 1) * disagreements / (ones * (values - ones))
    return kappa, alpha


def asked(url: str) -> list[dict]:
    root = url.removesuffix("/v1")
    requests = httpx.get(f"{root}/standin/requests").json()["requests"]
    httpx.delete(f"{root}/standin/requests")
    return requests


def test_judged_once_then_never_then_the_edited_sample_then_only_a_new_judge(
    tmp_path: Path,
) -> None:
    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava"], tasks=[TASK])
    flips = {"one": ("--flip-fraction", "0.5", "--flip-seed", "1"),
             "two": ("--flip-fraction", "0.5", "--flip-seed", "2")}  # fmt: skip
    with (
        standin(tmp_path, *flips["one"], name="one") as (one, _),
        standin(tmp_path, *flips["two"], name="two") as (two, _),
    ):
        setup(workdir, {"judge-one": one}, limit=8)
        snakemake(workdir, SCORE)  # the judge metric's score, not the report: faster
        requests = asked(one)
        assert len(requests) == 8  # one request per judged sample
        # the random tiny model's answers are all wrong: "correct" exactly where judge-one flips
        meant = [1.0 if r["flipped"] else 0.0 for r in requests]
        judged = judgements(workdir, "judge-one")
        assert all(r["verdict"] == ("correct" if r["flipped"] else "incorrect") for r in requests)
        score = json.loads(
            (workdir / f"results/scores/tiny-llava/{TASK}/judge_correct.json").read_text()
        )
        assert score["overall"]["n"] == 8
        assert score["overall"]["value"] == pytest.approx(sum(j["verdict"] for j in judged) / 8)
        assert sorted(j["verdict"] for j in judged) == sorted(meant)
        assert {j["judge_model"] for j in judged} == {"standin-judge"}

        snakemake(workdir, SCORE)
        assert asked(one) == []  # a re-run asks nothing

        manifest = workdir / "data" / "demo_docs_vqa" / "manifest.jsonl"
        records = [json.loads(line) for line in manifest.read_text().splitlines()]
        first = next(r for r in records if r["id"] == judged[0]["id"])
        first["question"] += " (уточнение)"
        manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        snakemake(workdir, SCORE)
        (request,) = asked(one)  # exactly the edited sample, re-asked
        assert "(уточнение)" in request["prompt"]

        setup(workdir, {"judge-one": one, "judge-two": two}, limit=8)
        dry = snakemake(workdir, "-n", SCORE)
        judge_jobs = jobs_by_wildcard(dry.stdout, "judge_", "metric")
        assert judge_jobs == {"judge_correct": 1}  # judge-two's only
        assert "rule judge_judge-two:" in dry.stdout and "rule judge_judge-one:" not in dry.stdout
        assert jobs_by_wildcard(dry.stdout, "predict_", "model") == {}
        snakemake(workdir)  # to the report
        assert len(asked(two)) == 8 and asked(one) == []
    check_panel_agreement(workdir)


def check_panel_agreement(workdir: Path) -> None:
    """The report's α and κ of the two judges, who disagree where exactly one of them flips,
    equal the hand-computed ones."""
    first = [j["verdict"] for j in judgements(workdir, "judge-one")]
    second = [j["verdict"] for j in judgements(workdir, "judge-two")]
    assert first != second and len(set(first)) == len(set(second)) == 2, "a degenerate fixture"
    kappa, alpha = hand_kappa_and_alpha(first, second)
    page = (workdir / "results" / "report" / "index.html").read_text(encoding="utf-8")
    part = page[page.index('<section id="judges">') :]
    assert re.search(r'<b class="alpha">([^<]*)</b>', part)[1] == f"{alpha:.3f}"
    assert re.search(r'<td class="kappa">([^<]*)</td>', part)[1] == f"{kappa:.3f}"


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
    result = snakemake(workdir, SCORE)
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


def test_a_killed_judge_job_resumes_with_the_missing_samples_only(tmp_path: Path) -> None:
    """SIGKILL to Snakemake while its judge job waits on a slow judge: the re-run asks exactly
    the samples the journal lacks (0 asked twice) and every sample ends judged once (0 lost)."""
    from tests.integration.test_resume import wait_for

    workdir = make_workdir(
        tmp_path / "wd", models=["tiny-llava"], tasks=[TASK], inference={"concurrency": 1}
    )
    journal = workdir / f"results/.journal/judge/judge_correct/judge-one/tiny-llava/{TASK}.jsonl"

    def judged() -> list[str]:
        if not journal.exists():
            return []
        lines = journal.read_text(encoding="utf-8").splitlines()[1:]
        return [json.loads(line)["id"] for line in lines if line.endswith("}")]

    with standin(tmp_path, "--delay-ms", "300", name="slow") as (url, _):
        setup(workdir, {"judge-one": url}, limit=8)
        snakemake(workdir, f"results/predictions/tiny-llava/{TASK}.jsonl")
        process = subprocess.Popen(
            snakemake_command(workdir, SCORE), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(lambda: len(judged()) >= 3, 120, "the first verdicts in the judge's journal")
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        time.sleep(1)  # the judge job follows its parent (PR_SET_PDEATHSIG)
        before = judged()
        assert 3 <= len(before) < 8, "the kill should land mid-run"
        asked(url)
        snakemake(workdir, "--unlock")
        snakemake(workdir, "--rerun-incomplete", SCORE)
        resent = {r["prompt"].splitlines()[0] for r in asked(url)}
    lines = judgements(workdir, "judge-one")
    assert len(lines) == 8 and len({line["id"] for line in lines}) == 8  # 0 lost
    manifest = workdir / "data" / "demo_docs_vqa" / "manifest.jsonl"
    questions = {r["id"]: r["question"] for r in map(json.loads, manifest.read_text().splitlines())}
    missing = {f"Вопрос: {questions[line['id']]}" for line in lines if line["id"] not in before}
    assert resent == missing  # exactly the samples without a verdict: 0 asked twice


def test_a_pairwise_metric_in_a_run_of_two_models(tmp_path: Path) -> None:
    """Each sample asked in both orders for the model, nothing for the compared-against model
    (a tie with itself); the report gives the position bias: the tiny models' answers are all
    wrong, so the stand-in picks the answer shown first each time - every pair a tie."""
    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava", "tiny-idefics3"], tasks=[TASK])
    prompt = (
        "Вопрос: {{ question }}\nЭталон: {{ answers | join(' | ') }}\n"
        'Ответ A: {{ answer_a }}\nОтвет B: {{ answer_b }}\nОтветь JSON: {"verdict": "A"} или "B".'
    )
    with standin(tmp_path, "--pairwise", name="pair") as (url, _):
        setup(workdir, {"judge-one": url}, limit=3,
              verdict={"type": "pairwise", "against": "tiny-idefics3"})  # fmt: skip
        metric = workdir / "config" / "metrics" / "judge_correct.yaml"
        entry = read_yaml(metric)
        entry["judge"]["prompt"] = {"user": prompt}
        write_yaml(metric, entry)
        snakemake(workdir)
        assert len(asked(url)) == 6  # 3 samples × 2 orders, for tiny-llava only
    mine = judgements(workdir, "judge-one")
    assert [(j["first"], j["swapped"], j["verdict"]) for j in mine] == [(1.0, 0.0, 0.5)] * 3
    assert [j["status"] for j in judgements(workdir, "judge-one", "tiny-idefics3")] == ["ok"] * 3
    for model in ("tiny-llava", "tiny-idefics3"):
        score = json.loads(
            (workdir / f"results/scores/{model}/{TASK}/judge_correct.json").read_text()
        )
        assert score["overall"]["value"] == 0.5
    page = (workdir / "results" / "report" / "index.html").read_text(encoding="utf-8")
    part = page[page.index('<section id="judges">') :]
    assert re.search(r'<td class="position-bias">([^<]*)</td>', part)[1] == "100.0%"
    assert "against <b>tiny-idefics3</b>" in part
