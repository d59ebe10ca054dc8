"""The load generator against real servers on loopback: the GPU-engine stand-in with known
timing (closed and open loop), and a server answering 500 or breaking its stream."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

from vlmhyperbench.config.schema import PerfSettings
from vlmhyperbench.inference.launcher import running_wrapper
from vlmhyperbench.perf import closed_loop, level_stats, open_loop, poisson_gaps
from vlmhyperbench.perf.job import LadderRun, PerfAborted

STANDIN = Path(__file__).resolve().parents[2] / "benchmarks" / "engine_standin.py"
BODY = {"messages": [{"role": "user", "content": "a b c"}], "max_tokens": 6, "ignore_eos": True}


def _standin(tmp_path: Path, step_ms: float, prefill_ms: float):
    def command(port: int) -> list[str]:
        return [sys.executable, str(STANDIN), "--port", str(port),
                "--step-ms", str(step_ms), "--prefill-ms", str(prefill_ms)]  # fmt: skip

    return running_wrapper(command, tmp_path / "standin.log", startup_timeout_s=60)


def test_closed_and_open_loop_against_the_engine_standin(tmp_path: Path) -> None:
    with _standin(tmp_path, step_ms=10, prefill_ms=20) as url:
        records = asyncio.run(closed_loop(url, [BODY], 4, 24, warmup=4))
        measured = [r for r in records if r.phase == "measured"]
        assert len(measured) == 24 and all(r.ok for r in measured)
        assert [r.phase for r in records[:4]] == ["warmup"] * 4
        stats = level_stats(records, 4)
        assert all(r.output_tokens == 6 and len(r.chunk_times) == 6 for r in measured)
        assert 20 <= stats.ttft_ms.p50 <= 60  # prefill 20 ms + up to a step, + HTTP
        assert 8 <= stats.tpot_ms.mean <= 14  # one token a 10 ms step
        assert 8 <= stats.itl_ms.p50 <= 14
        little = 4 / (stats.e2e_ms.mean / 1000)
        assert abs(stats.request_throughput / little - 1) < 0.15

        records = asyncio.run(open_loop(url, [BODY], 40.0, 40, warmup=5, seed=3))
        measured = [r for r in records if r.phase == "measured"]
        assert len(measured) == 40 and all(r.ok for r in measured)
        assert max(r.index for r in records) >= 44  # warm-up 5 + 40 measured (+ cool-down)
        ordered = sorted(records, key=lambda r: r.index)  # cancelled cool-down ones absent
        index = np.array([r.index for r in ordered])
        starts = np.array([r.start for r in ordered])
        gaps = poisson_gaps(40.0, int(index.max()) + 1, np.random.default_rng(3))
        planned = np.cumsum(gaps)[index]
        drift = (starts - starts[0]) - (planned - planned[0])  # sent at the seeded times
        assert np.median(np.abs(drift)) < 0.003 and np.abs(drift).max() < 0.02


class _Failing:
    """A raw ASGI app: 500 on every other request, a stream cut short on the rest."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        self.count += 1
        if self.count % 2:
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b'{"error": "boom"}'})
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        chunk = b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"t0"}}]}\n\n'
        await send({"type": "http.response.body", "body": chunk, "more_body": False})


def test_http_errors_and_broken_streams_are_error_records() -> None:
    import threading
    import time

    import uvicorn

    from vlmhyperbench.inference.launcher import free_port

    port = free_port("127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(_Failing(), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        records = asyncio.run(closed_loop(f"http://127.0.0.1:{port}/v1", [BODY], 2, 10))
    finally:
        server.should_exit = True
        thread.join(10)
    measured = [r for r in records if r.phase == "measured"]
    assert len(measured) == 10 and not any(r.ok for r in measured)
    errors = {r.error.split(":")[0] for r in measured}  # type: ignore[union-attr]
    assert errors == {"HTTP 500", "stream ended without [DONE]"}
    stats = level_stats(records, 2)
    assert stats.error_rate == 1.0 and stats.completed == 0 and stats.e2e_ms is None


def test_the_sla_search_finds_the_knee_of_a_standin_that_batches_four(tmp_path: Path) -> None:
    """The stand-in runs 4 sequences at once (``--max-num-seqs 4``): up to concurrency 4 a
    request takes prefill + 10 steps (~220 ms at every percentile); beyond, requests queue for
    a slot (measured: p95 ~375 ms at 5, ~360 at 6, ~400 at 8). With a p95 e2e SLO of 300 ms the
    highest concurrency meeting it is 4: the ladder 1, 2, 8 fails at 8, and bisection finds 4
    (5 fails, 3 and 4 meet it)."""
    settings = PerfSettings(concurrency=[1, 2, 8], requests=24, slo={"e2e_ms": 300})

    def command(port: int) -> list[str]:
        return [sys.executable, str(STANDIN), "--port", str(port), "--step-ms", "20",
                "--prefill-ms", "20", "--max-num-seqs", "4"]  # fmt: skip

    body = {**BODY, "max_tokens": 10}
    with running_wrapper(command, tmp_path / "standin.log", startup_timeout_s=60) as url:
        ladder = LadderRun(url, [body], ["s0"], settings, "concurrency", "standin")
        result = ladder.search(settings.concurrency)
    measured = [level.level for level in result.levels]
    assert result.best == 4 and result.reason == "bisected", measured
    assert measured == [1, 2, 8, 5, 3, 4]
    assert [level.meets_slo for level in result.levels] == [True, True, False, False, True, True]
    # every request of every level, warm-up included, is a row of the per-request records
    assert len(ladder.rows) >= sum(level.requests for level in result.levels)
    assert {row["sample_id"] for row in ladder.rows} == {"s0"}


def test_a_server_that_stopped_answering_fails_the_level_not_records_it(tmp_path: Path) -> None:
    """Errors from a dead server are an infrastructure failure: the ladder stops with
    PerfAborted naming the level and the health check, and no level is recorded."""
    settings = PerfSettings(concurrency=[1, 2], requests=4, slo={"e2e_ms": 1000})
    with _standin(tmp_path, step_ms=1, prefill_ms=1) as url:
        ladder = LadderRun(url, [BODY], ["s0"], settings, "concurrency", "standin")
        assert ladder.measure(1).errors == 0
    stopped = r"standin: the server stopped answering at concurrency 2 \(4 of 4 requests failed"
    with pytest.raises(PerfAborted, match=stopped):
        ladder.measure(2)
    assert {row["level"] for row in ladder.rows} == {1}  # the failed level left no rows
