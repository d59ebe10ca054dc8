"""The predict client (:mod:`vlmhyperbench.inference.runner`) against a scripted OpenAI-compatible
server on loopback: concurrency, per-sample errors, retries, a dead and a silent server.

The slow integration tests (``test_resume``, ``test_infra_failures``) run the same paths with
real servers under ``snakemake``; these take a few seconds and pin the client's own rules.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.http_server import QuietHandler, loopback_http_server
from vlmhyperbench.config.schema import InferenceSettings, ModelEntry, TaskEntry
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.inference.journal import Journal
from vlmhyperbench.inference.prompts import TaskPrompts
from vlmhyperbench.inference.runner import PredictionAborted, PredictRun, predict

#: What the server does with a question: ("answer", text), ("status", code) or ("hang", None).
Behaviour = Callable[[str, int], tuple[str, object]]


@dataclass
class FakeServer:
    """Chat completions answered as ``behaviour`` says (given the question and how many times it
    was asked); ``/health`` answers ``health_status``."""

    behaviour: Behaviour
    delay_s: float = 0.0
    health_status: int = 200
    asked: Counter = field(default_factory=Counter)
    bodies: list[dict] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def chat(self, question: str) -> tuple[int, dict, dict[str, str]]:
        with self.lock:
            self.asked[question] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            kind, value = self.behaviour(question, self.asked[question])
        try:
            if kind == "hang":
                self.release.wait(30)
            time.sleep(self.delay_s)
        finally:
            with self.lock:
                self.in_flight -= 1
        if kind == "status":
            body = {"error": {"message": f"scripted {value}", "type": "server_error"}}
            return int(value), body, {"Retry-After": "0"}
        return 200, completion(str(value)), {}


def completion(text: str) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        "performance": {"latency_ms": 1.0},
    }


def handler_for(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def reply(self, status: int, body: dict, headers: dict[str, str]) -> None:
            self.send_body(status, json.dumps(body).encode(), "application/json", headers)

        def do_GET(self) -> None:
            if self.path == "/health":
                self.reply(server.health_status, {"detail": "scripted health"}, {})
            else:
                self.reply(404, {"detail": "not found"}, {})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server.bodies.append(body)
            content = body["messages"][-1]["content"]
            question = next(part["text"] for part in content if part["type"] == "text")
            self.reply(*server.chat(question))

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[FakeServer, str]]]:
    fakes: list[FakeServer] = []
    with ExitStack() as servers:

        def start(behaviour: Behaviour, **options: object) -> tuple[FakeServer, str]:
            fake = FakeServer(behaviour, **options)  # type: ignore[arg-type]
            port = servers.enter_context(loopback_http_server(handler_for(fake)))
            fakes.append(fake)
            return fake, f"http://127.0.0.1:{port}/v1"

        yield start
        for fake in fakes:
            fake.release.set()


def make_run(tmp_path: Path, n: int, **settings: object) -> PredictRun:
    task = TaskEntry(name="t", kind="vqa", dataset="d", metrics=["anls"])
    samples = [Sample(id=f"s{k}", question=f"q{k}", answers=["a"]) for k in range(n)]
    return PredictRun(
        model=ModelEntry(name="m", source={"type": "local", "path": str(tmp_path)}),
        task=task,
        prompts=TaskPrompts.load(task, tmp_path / "t.yaml"),
        samples=samples,
        dataset_dir=tmp_path,
        journal=Journal(tmp_path / "journal.jsonl", "setup"),
        output_path=tmp_path / "predictions.jsonl",
        settings=InferenceSettings(**{"request_timeout_s": 30, **settings}),  # type: ignore[arg-type]
        served_model="m",
        requests={s.id: f"request-of-{s.id}" for s in samples},
    )


def journaled(run: PredictRun) -> dict[str, dict]:
    lines = run.journal.path.read_text(encoding="utf-8").splitlines()[1:]
    return {record["id"]: record for record in map(json.loads, lines)}


def echo(question: str, asked: int) -> tuple[str, object]:
    return "answer", f"answer to {question}"


def test_samples_go_out_concurrency_at_a_time_and_land_in_manifest_order(
    tmp_path: Path, serve, caplog: pytest.LogCaptureFixture
) -> None:
    fake, base_url = serve(echo, delay_s=0.1)
    run = make_run(tmp_path, 8, concurrency=3)
    with caplog.at_level(logging.INFO, logger="vlmhyperbench.predict"):
        stats = predict(run, base_url)
    assert (stats.total, stats.sent, stats.errors, stats.retries) == (8, 8, 0, 0)
    assert fake.max_in_flight == 3
    lines = [json.loads(line) for line in run.output_path.read_text().splitlines()]
    assert [line["id"] for line in lines] == [f"s{k}" for k in range(8)]
    assert [line["prediction"] for line in lines] == [f"answer to q{k}" for k in range(8)]
    assert all(r["request"] == f"request-of-{i}" for i, r in journaled(run).items())
    assert "m/t: 8/8 sent, 0 errors, 0 retries" in caplog.text
    # Everything is answered: a second run sends nothing.
    assert predict(make_run(tmp_path, 8), base_url).sent == 0
    assert sum(fake.asked.values()) == 8


def test_a_refused_request_or_a_missing_image_is_that_samples_error(tmp_path: Path, serve) -> None:
    def refuse_q1(question: str, asked: int) -> tuple[str, object]:
        return ("status", 400) if question == "q1" else echo(question, asked)

    fake, base_url = serve(refuse_q1)
    run = make_run(tmp_path, 3, max_retries=2)
    run.samples[2] = Sample(id="s2", question="q2", answers=["a"], images=["missing.png"])
    stats = predict(run, base_url)
    assert (stats.sent, stats.errors, stats.retries) == (3, 2, 0)
    records = journaled(run)
    assert records["s0"]["error"] is None
    assert records["s1"]["error"].startswith("HTTP 400: ")
    assert "missing.png" in records["s2"]["error"]
    assert fake.asked["q1"] == 1 and "q2" not in fake.asked  # a sample's fault is not retried


def test_a_server_failure_is_retried_and_only_the_answer_is_kept(tmp_path: Path, serve) -> None:
    def fail_once(question: str, asked: int) -> tuple[str, object]:
        return ("status", 503) if asked == 1 else echo(question, asked)

    fake, base_url = serve(fail_once)
    stats = predict(run := make_run(tmp_path, 2, max_retries=1), base_url)
    assert (stats.sent, stats.errors, stats.retries) == (2, 0, 2)
    assert {r["prediction"] for r in journaled(run).values()} == {"answer to q0", "answer to q1"}
    assert fake.asked == Counter({"q0": 2, "q1": 2})


def test_a_dead_server_stops_the_run_naming_model_server_sample_and_cause(
    tmp_path: Path, serve
) -> None:
    def q1_dies(question: str, asked: int) -> tuple[str, object]:
        return ("status", 503) if question == "q1" else echo(question, asked)

    fake, base_url = serve(q1_dies, health_status=503)
    run = make_run(tmp_path, 4, concurrency=1, max_retries=3)
    with pytest.raises(PredictionAborted) as failure:
        predict(run, base_url)
    message = str(failure.value)
    assert message.startswith(f"m/t: the server at {base_url} stopped answering: sample s1: ")
    assert "HTTP 503: " in message and "(after 1 try); its /health: HTTP 503" in message
    assert "1 of 4 samples were answered in this run (0 retries)" in message
    assert "re-run to send only the missing samples (3)" in message
    assert set(journaled(run)) == {"s0"}  # nothing for the failed sample or those after it
    assert not run.output_path.exists()
    assert "q2" not in fake.asked


def test_retries_run_out_against_a_server_that_says_it_is_healthy(tmp_path: Path, serve) -> None:
    fake, base_url = serve(lambda question, asked: ("status", 502))
    run = make_run(tmp_path, 1, max_retries=2)
    with pytest.raises(PredictionAborted, match=r"sample s0: HTTP 502: .*\(after 3 tries\)\. "):
        predict(run, base_url)
    assert fake.asked["q0"] == 3
    assert journaled(run) == {}


def test_a_silent_server_is_found_within_the_stall_timeout(tmp_path: Path, serve) -> None:
    fake, base_url = serve(lambda question, asked: ("hang", None), health_status=503)
    run = make_run(tmp_path, 3, concurrency=2, stall_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(PredictionAborted) as failure:
        predict(run, base_url)
    assert time.monotonic() - started < 5  # not request_timeout_s (30) x retries
    assert "to 2 requests in flight (stall_timeout_s: 1) and its /health failed: HTTP 503" in str(
        failure.value
    )
    assert journaled(run) == {}
    assert set(fake.asked) == {"q0", "q1"}  # the third waited for a slot and was never sent


def test_a_slow_but_healthy_server_is_left_to_finish(tmp_path: Path, serve) -> None:
    fake, base_url = serve(echo, delay_s=1.2)
    stats = predict(make_run(tmp_path, 2, concurrency=2, stall_timeout_s=0.4), base_url)
    assert (stats.sent, stats.errors, stats.retries) == (2, 0, 0)
    assert fake.asked == Counter({"q0": 1, "q1": 1})


def test_extra_body_goes_out_with_every_request_and_nothing_without_it(
    tmp_path: Path, serve
) -> None:
    fake, base_url = serve(echo)
    run = make_run(tmp_path / "a", 3)
    run.extra_body = {"mm_processor_kwargs": {"max_pixels": 401408}}
    assert predict(run, base_url).sent == 3
    assert len(fake.bodies) == 3
    for body in fake.bodies:
        assert body["mm_processor_kwargs"] == {"max_pixels": 401408}
        assert body["model"] == "m" and body["messages"]  # beside the standard fields
    fake.bodies.clear()
    plain = make_run(tmp_path / "b", 2)
    assert plain.extra_body == {}
    assert predict(plain, base_url).sent == 2
    assert len(fake.bodies) == 2
    assert all("mm_processor_kwargs" not in body for body in fake.bodies)
