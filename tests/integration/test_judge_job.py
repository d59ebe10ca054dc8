"""The judge job's core against the stand-in judge: one request per judged sample, none on a
re-run, exactly the changed ones after an edit, a judge that dies stops the job naming it and
keeps what it answered, and unreadable replies are ``invalid`` with why."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.integration.test_judge_standin import MODEL, standin
from tests.judge_standin import GARBAGE_REPLY, garbled
from vlmhyperbench.config.schema import InferenceSettings
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.inference.journal import Journal
from vlmhyperbench.judge.job import (
    ItemMaker,
    JudgeAborted,
    JudgeRun,
    VerdictRule,
    judge,
    judge_items,
)
from vlmhyperbench.judge.requests import JudgeTemplates

TEMPLATES = JudgeTemplates(
    user="Вопрос: {{ question }}\nЭталон: {{ answers | join(' | ') }}\n"
    "Ответ модели: {{ prediction }}\nОтветь JSON."
)
JUDGE = {"model": MODEL}
GENERATION = {"max_tokens": 32, "temperature": 0.0}
SETTINGS = InferenceSettings(concurrency=2, max_retries=1, request_timeout_s=10)
SAMPLES = [Sample(id=f"s{i}", question=f"Поле {i}?", answers=[f"значение {i}"]) for i in range(8)]


def predictions(edited: dict[str, str] | None = None) -> dict[str, dict]:
    """Even samples answered right, odd ones wrong; s7's request failed (not judged)."""
    records = {
        s.id: {"id": s.id, "prediction": s.answers[0] if i % 2 == 0 else "нет", "error": None}
        for i, s in enumerate(SAMPLES)
    }
    records["s7"] = {"id": "s7", "prediction": None, "error": "HTTP 500: boom"}
    for sample_id, text in (edited or {}).items():
        records[sample_id]["prediction"] = text
    return records


def run(tmp_path: Path, edited: dict[str, str] | None = None) -> JudgeRun:
    maker = ItemMaker(TEMPLATES, "t", JUDGE, tmp_path, GENERATION)
    items = judge_items(SAMPLES, predictions(edited), maker)
    return JudgeRun(
        label=f"judge_ok: {MODEL} on m/t", templates=TEMPLATES, rule=VerdictRule(), items=items,
        dataset_dir=tmp_path, journal=Journal(tmp_path / "journal.jsonl", "judge-fp"),
        settings=SETTINGS, served_model=MODEL, generation=GENERATION,
    )  # fmt: skip


def asked(url: str) -> list[dict]:
    root = url.removesuffix("/v1")
    requests = httpx.get(f"{root}/standin/requests").json()["requests"]
    httpx.delete(f"{root}/standin/requests")
    return requests


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_asked_once_per_judged_sample_then_never_then_exactly_the_edited(tmp_path: Path) -> None:
    out = tmp_path / "judgements.jsonl"
    with standin(tmp_path) as (url, _):
        stats = judge(run(tmp_path), url, out)
        assert stats.sent == 7 and len(asked(url)) == 7  # s7's prediction failed: not judged
        judged = lines(out)
        assert [j["id"] for j in judged] == [f"s{i}" for i in range(7)]
        assert [j["verdict"] for j in judged] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
        assert {j["label"] for j in judged} == {"correct", "incorrect"}
        assert {j["judge_model"] for j in judged} == {MODEL}
        assert {j["system_fingerprint"] for j in judged} == {"fp_standin_1"}

        assert judge(run(tmp_path), url, out).sent == 0 and asked(url) == []  # nothing re-asked
        assert lines(out) == judged

        edited = run(tmp_path, edited={"s1": "значение 1"})  # s1 now answered right
        assert judge(edited, url, out).sent == 1
        (request,) = asked(url)
        assert request["prediction"] == "значение 1"
        assert lines(out)[1]["verdict"] == 1.0 and lines(out)[0] == judged[0]


def test_a_judge_that_answers_503_then_dies_stops_the_job_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "judgements.jsonl"
    options = ("--fail-after", "3", "--fail-count", "2", "--delay-ms", "50")
    with standin(tmp_path, *options, name="dying") as (url, process):
        with pytest.raises(JudgeAborted, match=rf"judge_ok: {MODEL} on m/t: the server at "):
            judge(run(tmp_path), url, out)
        process.wait(timeout=10)
    assert not out.exists()  # no judgements file from a run that stopped
    journal = lines(tmp_path / "journal.jsonl")[1:]
    answered = {record["id"] for record in journal}
    assert len(answered) == 3 and all(record["error"] is None for record in journal)
    with standin(tmp_path, name="back") as (url, _):  # resumes with the missing samples only
        assert judge(run(tmp_path), url, out).sent == 4
        resumed = {r["prompt"].splitlines()[0] for r in asked(url)}
    missing = {f"Вопрос: {s.question}" for s in SAMPLES[:7] if s.id not in answered}
    assert resumed == missing  # 0 lost, 0 asked twice
    assert [line["id"] for line in lines(out)] == [f"s{i}" for i in range(7)]


def test_unreadable_replies_are_invalid_with_why(tmp_path: Path) -> None:
    out = tmp_path / "judgements.jsonl"
    with standin(tmp_path, "--garbage-fraction", "0.5", "--flip-seed", "3") as (url, _):
        judge(run(tmp_path), url, out)
    judged = lines(out)
    records = predictions()
    for line in judged:
        sample = next(s for s in SAMPLES if s.id == line["id"])
        if garbled(records[line["id"]]["prediction"], sample.answers, 0.5, 3):
            assert line["status"] == "invalid" and line["verdict"] is None
            assert line["reply"] == GARBAGE_REPLY and "verdict" in line["detail"]
        else:
            assert line["status"] == "ok" and line["verdict"] in (0.0, 1.0)
    assert any(line["status"] == "invalid" for line in judged)
