"""The wrapper's admission limit (``--max-concurrent-requests``) and the backends' one
"model is loaded" log line.

One wrapper serves all tasks of a model, several clients at once; the limit caps the chat
requests generated at once. The app is driven through ASGI directly (no server, no sockets),
so a client's disconnect is one message, sent exactly when the test wants it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from vlmhb_wrapper.admission import Slot
from vlmhb_wrapper.app import create_app
from vlmhb_wrapper.backends.base import (
    Backend,
    BackendConfig,
    GenerationRequest,
    GenerationResult,
    StreamEvent,
    TextDelta,
)
from vlmhb_wrapper.backends.engine import VLLMBackend
from vlmhb_wrapper.backends.proxy import OpenAIBackend, OpenAIUpstream
from vlmhb_wrapper.cli import build_parser
from vlmhb_wrapper.prometheus import WrapperMetrics

DELAY = 0.25  # seconds a "slow" answer takes


class _SlowBackend(Backend):
    """Answers after a while; the prompt says how: ``sleep`` (DELAY), ``hold`` (until
    ``hold`` is set), ``fail`` (raises before any output). Records concurrency."""

    name = "slow"
    needs_decoded_images = False

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.active = self.peak = 0
        self.seen: list[str] = []
        self.cancelled: list[str] = []
        self.starts: dict[str, float] = {}
        self.hold = asyncio.Event()

    async def _load(self) -> None:
        pass

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        text = request.messages[-1].parts[-1].text  # type: ignore[union-attr]
        kind, _, tag = text.partition(" ")
        self.seen.append(tag)
        self.active += 1
        self.peak = max(self.peak, self.active)
        start = self.starts[tag] = time.perf_counter()
        answered = False
        try:
            if kind == "fail":
                raise RuntimeError("the model fell over")
            if kind == "hold":
                yield TextDelta("held ")
                await self.hold.wait()
            else:
                await asyncio.sleep(DELAY)
            yield TextDelta(tag)
            now = time.perf_counter()
            answered = True
            yield GenerationResult(
                text=tag, finish_reason="stop", prompt_tokens=1, completion_tokens=1,
                gen_start=start, finished=now, first_token=now, last_token=now,
            )  # fmt: skip
        except (asyncio.CancelledError, GeneratorExit):
            if not answered:  # closed after the result is the normal end
                self.cancelled.append(tag)
            raise
        finally:
            self.active -= 1


class _Client:
    """One ASGI request: the body, then (when ``leave()`` is called) a disconnect."""

    def __init__(self, app: Any, payload: dict[str, Any]) -> None:
        self.body = json.dumps(payload).encode()
        self.sent: list[dict[str, Any]] = []
        self.first_body = asyncio.Event()
        self._gone = asyncio.Event()
        self._body_sent = False
        self.started = time.perf_counter()
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(self.body)).encode())],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        self.task = asyncio.create_task(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            self.first_body.set()

    def leave(self) -> None:
        self._gone.set()

    async def result(self, timeout: float = 10.0) -> tuple[int, bytes]:
        # asyncio.wait, not wait_for: a request that does not end must fail the test, not be
        # cancelled into ending.
        done, _ = await asyncio.wait({self.task}, timeout=timeout)
        assert done, f"no answer within {timeout} s"
        self.task.result()
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return start["status"], body


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


async def _app(limit: int | None) -> tuple[Any, _SlowBackend]:
    backend = _SlowBackend(BackendConfig(model="m"))
    await backend.load()  # ready without the app's lifespan
    return create_app(backend, max_concurrent_requests=limit), backend


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "timed out waiting for a condition"
        await asyncio.sleep(0.005)


def _metric(app: Any, name: str) -> float | None:
    for line in app.state.metrics.render().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


# --------------------------------------------------------------------------------- the limit


@pytest.mark.parametrize("stream", [False, True])
def test_limit_2_lets_at_most_2_of_6_generate_and_reports_the_wait(stream: bool) -> None:
    async def main() -> None:
        app, backend = await _app(2)
        clients = [_Client(app, _chat(f"sleep r{i}", stream=stream)) for i in range(6)]
        await _until(lambda: _metric(app, "vlmhb_requests_waiting") == 4)
        assert backend.active == 2
        answers = [await c.result() for c in clients]
        assert [status for status, _ in answers] == [200] * 6
        assert backend.peak == 2  # never more than the limit at once
        assert sorted(backend.seen) == [f"r{i}" for i in range(6)]
        assert backend.seen == [f"r{i}" for i in range(6)]  # FIFO
        queue_ms = [_performance(body, stream)["queue_ms"] for _, body in answers]
        for client, tag, queue in zip(clients, backend.seen, queue_ms, strict=True):
            waited_ms = (backend.starts[tag] - client.started) * 1000
            # What the request waited for its slot is in its queue_ms (the rest of the gap is
            # parsing, the ASGI hop and the event loop: a few ms).
            assert queue <= waited_ms + 1.0
            assert queue >= waited_ms - 50.0, (tag, queue, waited_ms)
        waves = sorted(queue_ms)
        assert waves[1] < 50.0  # the first two did not wait
        assert waves[2] >= DELAY * 1000 * 0.9 and waves[4] >= 2 * DELAY * 1000 * 0.9
        queue_sum = _metric(app, "vlmhb_queue_seconds_sum")
        assert queue_sum is not None and queue_sum * 1000 >= sum(queue_ms) - 1.0
        assert _metric(app, "vlmhb_requests_waiting") == 0
        assert _metric(app, "vlmhb_requests_in_flight") == 0
        assert _metric(app, "vlmhb_max_concurrent_requests") == 2

    asyncio.run(main())


def test_without_the_flag_concurrency_is_unlimited() -> None:
    async def main() -> None:
        app, backend = await _app(None)
        clients = [_Client(app, _chat(f"sleep r{i}")) for i in range(6)]
        answers = [await c.result() for c in clients]
        assert [status for status, _ in answers] == [200] * 6
        assert backend.peak == 6
        assert all(_performance(body, False)["queue_ms"] == 0 for _, body in answers)
        assert _metric(app, "vlmhb_max_concurrent_requests") is None  # no limit, no sample

    asyncio.run(main())


def _performance(body: bytes, stream: bool) -> dict[str, Any]:
    if not stream:
        return json.loads(body)["performance"]
    events = [line[6:] for line in body.decode().splitlines() if line.startswith("data: {")]
    return next(json.loads(e)["performance"] for e in events if '"performance"' in e)


# ------------------------------------------------------------------- slots are always freed


def test_a_client_that_leaves_while_waiting_frees_its_place() -> None:
    async def main() -> None:
        app, backend = await _app(1)
        holder = _Client(app, _chat("hold a"))
        await _until(lambda: backend.active == 1)
        leaver = _Client(app, _chat("sleep b"))
        await _until(lambda: _metric(app, "vlmhb_requests_waiting") == 1)
        leaver.leave()
        status, _ = await leaver.result(timeout=2)
        assert status == 499
        assert _metric(app, "vlmhb_requests_waiting") == 0
        backend.hold.set()
        assert (await holder.result())[0] == 200
        after = _Client(app, _chat("sleep c"))
        assert (await after.result(timeout=5))[0] == 200
        assert backend.seen == ["a", "c"]  # b never reached the backend

    asyncio.run(main())


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_while_generating_frees_its_slot(stream: bool) -> None:
    async def main() -> None:
        app, backend = await _app(1)
        leaver = _Client(app, _chat("hold a", stream=stream))
        await _until(lambda: backend.active == 1)
        if stream:
            await asyncio.wait_for(leaver.first_body.wait(), 5)
        waiting = _Client(app, _chat("sleep b", stream=stream))
        await _until(lambda: _metric(app, "vlmhb_requests_waiting") == 1)
        leaver.leave()  # the "hold" answer never ends by itself
        done, _ = await asyncio.wait({leaver.task}, timeout=5)
        assert done
        assert (await waiting.result(timeout=5))[0] == 200
        assert backend.cancelled == ["a"] and backend.active == 0
        assert _metric(app, "vlmhb_requests_in_flight") == 0

    asyncio.run(main())


@pytest.mark.parametrize("stream", [False, True])
def test_a_failed_request_frees_its_slot(stream: bool) -> None:
    async def main() -> None:
        app, backend = await _app(1)
        failing = _Client(app, _chat("fail a", stream=stream))
        status, body = await failing.result()
        assert status == 500 and b"the model fell over" in body
        after = _Client(app, _chat("sleep b", stream=stream))
        assert (await after.result(timeout=5))[0] == 200
        assert backend.seen == ["a", "b"] and backend.active == 0
        assert _metric(app, "vlmhb_requests_in_flight") == 0

    asyncio.run(main())


def test_refused_requests_take_no_slot() -> None:
    async def main() -> None:
        app, backend = await _app(1)
        holder = _Client(app, _chat("hold a"))
        await _until(lambda: backend.active == 1)
        # All answered while the only slot is taken: none of them waits for it.
        wrong_model = _Client(app, {**_chat("sleep b"), "model": "other"})
        invalid = _Client(app, {"model": "m", "messages": "not a list"})
        bad_image = _Client(
            app,
            {"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ]}]},
        )  # fmt: skip
        assert (await wrong_model.result(timeout=2))[0] == 404
        assert (await invalid.result(timeout=2))[0] == 422
        assert (await bad_image.result(timeout=2))[0] == 400
        assert backend.seen == ["a"]
        assert _metric(app, "vlmhb_requests_waiting") == 0
        backend.hold.set()
        assert (await holder.result())[0] == 200

    asyncio.run(main())


def test_create_app_refuses_a_limit_below_1() -> None:
    with pytest.raises(ValueError, match="max_concurrent_requests"):
        create_app(_SlowBackend(BackendConfig(model="m")), max_concurrent_requests=0)


def test_a_slot_is_counted_in_flight_and_released_once() -> None:
    """The streamed path may release a slot twice (its close, then an error): it acts once."""
    metrics = WrapperMetrics()
    freed: list[int] = []

    def in_flight() -> str:
        return next(
            line.split()[1]
            for line in metrics.render().splitlines()
            if line.startswith("vlmhb_requests_in_flight ")
        )

    slot = Slot(0.25, metrics, lambda: freed.append(1))
    assert slot.waited_s == 0.25 and in_flight() == "1"
    slot.release()
    slot.release()
    assert freed == [1] and in_flight() == "0"


# ------------------------------------------------------------------------------------- CLI


def test_cli_max_concurrent_requests() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "--model", "m", "--max-concurrent-requests", "4"])
    assert args.max_concurrent_requests == 4
    assert parser.parse_args(["serve", "--model", "m"]).max_concurrent_requests is None
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(SystemExit):
            parser.parse_args(["serve", "--model", "m", "--max-concurrent-requests", bad])


# ------------------------------------------------------------------------- "loaded" log line

_LOADED = re.compile(r"^loaded (\S+) .* in \d+\.\d\ds(;|$)")


@pytest.fixture
def wrapper_log(caplog: pytest.LogCaptureFixture) -> Any:
    """INFO records of the wrapper's loggers, even where a logging config stops them from
    propagating to the root logger (``vlmhb-wrapper serve`` does)."""
    top = logging.getLogger("vlmhb_wrapper")
    own = not top.propagate  # else caplog's root handler sees them already
    if own:
        top.addHandler(caplog.handler)
    with caplog.at_level(logging.INFO, logger="vlmhb_wrapper"):
        yield caplog
    if own:
        top.removeHandler(caplog.handler)


def _loaded_lines(caplog: pytest.LogCaptureFixture, model: str) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    return [line for line in lines if (m := _LOADED.match(line)) and m.group(1) == model]


def test_openai_backend_logs_loaded_once(
    monkeypatch: pytest.MonkeyPatch, wrapper_log: pytest.LogCaptureFixture
) -> None:
    async def probe(self: OpenAIUpstream, path: str) -> int:
        return 200

    monkeypatch.setattr(OpenAIUpstream, "probe", probe)
    backend = OpenAIBackend(
        BackendConfig(
            model="up-model", upstream_base_url="http://127.0.0.1:9/v1",
            engine_health_interval_s=0,
        )
    )  # fmt: skip

    async def main() -> None:
        await backend.load()
        await backend.close()

    asyncio.run(main())
    assert backend.ready
    assert len(_loaded_lines(wrapper_log, "up-model")) == 1, wrapper_log.text


_TINY_ENGINE = textwrap.dedent(
    """
    import json, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    args = sys.argv[1:]
    name, port = args[args.index("--served-model-name") + 1], int(args[args.index("--port") + 1])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            models = {"data": [{"id": name}]}
            body = b"{}" if self.path == "/health" else json.dumps(models).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


def test_engine_backend_logs_loaded_once(
    tmp_path: Path, wrapper_log: pytest.LogCaptureFixture
) -> None:
    script = tmp_path / "tiny_engine.py"
    script.write_text(_TINY_ENGINE)
    backend = VLLMBackend(
        BackendConfig(
            model="tiny-model", engine_launcher=(sys.executable, str(script)),
            engine_health_interval_s=0, engine_startup_timeout_s=30,
        )
    )  # fmt: skip

    async def main() -> None:
        await backend.load()
        await backend.close()

    asyncio.run(main())
    assert backend.error is None
    assert len(_loaded_lines(wrapper_log, "tiny-model")) == 1, wrapper_log.text
