"""The wrapper refuses expensive requests cheaply, checked at the ASGI level: a counting body
stream records what the app consumed and tracemalloc what it kept.

* no API key: 401 before the app reads the body (with ``Expect: 100-continue`` not one byte
  is consumed; otherwise it is dropped as it arrives, never kept);
* a body over ``--max-request-bytes``: 413 while reading, with a declared size at once;
* pixels of all images of a request over ``--max-request-pixels``: 413 from the headers,
  before any image is decoded;
* text over ``--max-request-chars``: 413 before anything is tokenised (far over: before the
  JSON is parsed).

Every refusal is an OpenAI-shaped error naming the limit and the flag that sets it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image
from vlmhb_wrapper.app import create_app
from vlmhb_wrapper.backends.base import (
    Backend,
    BackendConfig,
    GenerationRequest,
    GenerationResult,
    StreamEvent,
)
from vlmhb_wrapper.media import MediaLimits, MediaLoader
from vlmhb_wrapper.prompt import GenerationDefaults

KEY = "sk-test-0123456789"
CHUNK = 64 * 1024


class _RecordingBackend(Backend):
    """Answers "ok"; records every request it was given, and whether images were decoded."""

    name = "recording"
    needs_decoded_images = True

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.requests: list[GenerationRequest] = []

    async def _load(self) -> None:
        pass

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        now = time.perf_counter()
        yield GenerationResult(
            text="ok", finish_reason="stop", prompt_tokens=1, completion_tokens=1,
            gen_start=now, finished=now, first_token=now, last_token=now,
        )  # fmt: skip


class CountingBody:
    """An ASGI ``receive`` that produces ``total`` bytes in 64 KiB chunks on demand (nothing
    is stored on this side) and counts what was consumed."""

    def __init__(self, payload: bytes | None = None, total: int = 0) -> None:
        self.payload, self.total = payload, total if payload is None else len(payload)
        self.consumed = 0
        self._chunk = b"x" * CHUNK

    async def __call__(self) -> dict[str, Any]:
        if self.consumed >= self.total:
            await asyncio.sleep(3600)  # the client waits for the answer: no disconnect
        size = min(CHUNK, self.total - self.consumed)
        if self.payload is not None:
            chunk = self.payload[self.consumed : self.consumed + size]
        else:
            chunk = self._chunk[:size]
        self.consumed += size
        return {"type": "http.request", "body": chunk, "more_body": self.consumed < self.total}


def _app(backend: Backend, **kwargs: Any) -> Any:
    asyncio.run(backend.load())  # ready without the app's lifespan
    return create_app(backend, **kwargs)


def _call(
    app: Any, body: CountingBody, headers: dict[str, str], declare: bool = True
) -> tuple[int, dict[str, Any], int]:
    """POST /v1/chat/completions through the ASGI app; returns (status, JSON body, peak bytes
    allocated by the whole call as tracemalloc sees it)."""
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if declare:
        raw_headers.append((b"content-length", str(body.total).encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
        "query_string": b"", "root_path": "", "headers": raw_headers,
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    tracemalloc.start()
    try:
        asyncio.run(asyncio.wait_for(app(scope, body, send), timeout=120))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(payload), peak


def _backend() -> _RecordingBackend:
    return _RecordingBackend(BackendConfig(model="m"))


def _assert_openai_error(payload: dict[str, Any], code: str, *phrases: str) -> None:
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == code
    for phrase in phrases:
        assert phrase in error["message"], error["message"]


def _png_url(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("L", (width, height), 255).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _chat(content: Any) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": content}]}).encode()


# ------------------------------------------------------------------------------ authentication


def test_no_key_is_refused_before_the_body_is_read_with_100_continue() -> None:
    backend = _backend()
    body = CountingBody(total=60 << 20)
    status, payload, _ = _call(
        _app(backend, api_key=KEY), body, {"expect": "100-continue", "x-api-key": "wrong"}
    )
    assert status == 401
    _assert_openai_error(payload, "invalid_api_key", "--api-key-env")
    assert body.consumed == 0  # the client was never asked for the body
    assert backend.requests == []


def test_no_key_drops_a_60_mb_body_without_keeping_it() -> None:
    backend = _backend()
    for declare in (True, False):  # Content-Length, or chunked
        body = CountingBody(total=60 << 20)
        status, payload, peak = _call(_app(backend, api_key=KEY), body, {}, declare=declare)
        assert status == 401
        _assert_openai_error(payload, "invalid_api_key")
        # Read to its end so that the client sees the 401, but never held: the whole call
        # allocated less than 2 MB at its peak for a 60 MB body.
        assert body.consumed == 60 << 20
        assert peak < 2 << 20, peak
    assert backend.requests == []


# ------------------------------------------------------------------------------- body size


def test_body_limit_is_enforced_while_reading() -> None:
    app = _app(_backend(), max_request_bytes=1 << 20)
    # Declared over the limit and the client waits for 100 Continue: refused, nothing read.
    body = CountingBody(total=200 << 20)
    status, payload, _ = _call(app, body, {"expect": "100-continue"})
    assert status == 413 and body.consumed == 0
    _assert_openai_error(payload, "request_too_large", "1048576 bytes", "--max-request-bytes")
    # Chunked, size unknown: counted as it arrives, the excess dropped, not kept.
    body = CountingBody(total=100 << 20)
    status, payload, peak = _call(app, body, {}, declare=False)
    assert status == 413
    assert peak < 3 << 20, peak  # at most the 1 MB limit was held


# ---------------------------------------------------------------------------------- pixels


def test_request_pixel_budget_refuses_from_the_headers_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[int] = []
    real_decode = MediaLoader._decode

    def counting_decode(self: MediaLoader, data: bytes) -> Image.Image:
        decoded.append(len(data))
        return real_decode(self, data)

    monkeypatch.setattr(MediaLoader, "_decode", counting_decode)
    backend = _backend()
    media = MediaLoader(
        limits=MediaLimits(max_image_pixels=1_000_000, max_request_pixels=3_000_000)
    )
    app = _app(backend, media_loader=media)
    url = _png_url(1000, 1000)  # 1 Mpx: at the per-image limit, 4 of them over the request's
    content = [{"type": "image_url", "image_url": {"url": url}} for _ in range(4)]
    status, payload, _ = _call(app, CountingBody(_chat(content)), {})
    assert status == 413
    _assert_openai_error(
        payload, "request_pixels_too_large", "4000000 pixels", "3000000", "--max-request-pixels"
    )
    assert decoded == [] and backend.requests == []
    # Three fit: all decoded, and the backend gets the request.
    status, _, _ = _call(app, CountingBody(_chat(content[:3])), {})
    assert status == 200 and len(decoded) == 3 and len(backend.requests) == 1


def test_per_image_pixel_limit_names_its_flag() -> None:
    app = _app(_backend(), media_loader=MediaLoader(limits=MediaLimits(max_image_pixels=100)))
    content = [{"type": "image_url", "image_url": {"url": _png_url(20, 20)}}]
    status, payload, _ = _call(app, CountingBody(_chat(content)), {})
    assert status == 413
    _assert_openai_error(payload, "image_too_large", "400 pixels", "--max-image-pixels")


# ------------------------------------------------------------------------------------ text


def test_text_budget_refuses_before_tokenising() -> None:
    backend = _backend()
    app = _app(backend, defaults=GenerationDefaults(max_request_chars=1000))
    # Just over: counted exactly after parsing, across messages and parts.
    body = _chat([{"type": "text", "text": "я" * 600}, {"type": "text", "text": "b" * 401}])
    status, payload, _ = _call(app, CountingBody(body), {})
    assert status == 413
    _assert_openai_error(payload, "text_too_large", "1001 characters", "--max-request-chars")
    assert backend.requests == []
    status, _, _ = _call(app, CountingBody(_chat("b" * 1000)), {})
    assert status == 200 and len(backend.requests) == 1


def test_a_huge_text_is_refused_before_the_json_is_parsed() -> None:
    app = _app(_backend())  # the defaults: 1,000,000 characters
    body = _chat("слово " * 500_000)  # 3M characters, 15.5 MB as JSON with \u escapes
    status, payload, peak = _call(app, CountingBody(body), {})
    assert status == 413
    _assert_openai_error(payload, "text_too_large", "--max-request-chars", "nothing was parsed")
    # The body itself is held once (joined by the framework); no string of it is built.
    assert peak < 2.5 * len(body), (peak, len(body))


def test_images_do_not_count_as_text() -> None:
    backend = _backend()
    app = _app(backend, defaults=GenerationDefaults(max_request_chars=10))
    url = _png_url(2000, 2000)
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "hi"}]
    status, _, _ = _call(app, CountingBody(_chat(content)), {})
    assert status == 200 and len(backend.requests) == 1


# ------------------------------------------------------------ per-request processor arguments


class _ProcessorArgsBackend(_RecordingBackend):
    name = "takes-kwargs"
    supports_mm_processor_kwargs = True


def _chat_with(**fields: Any) -> bytes:
    messages = [{"role": "user", "content": "hi"}]
    return json.dumps({"model": "m", "messages": messages, **fields}).encode()


def test_mm_processor_kwargs_reach_a_backend_that_takes_them_and_are_refused_elsewhere() -> None:
    kwargs = {"max_pixels": 401408, "min_pixels": 3136}
    taker = _ProcessorArgsBackend(BackendConfig(model="m"))
    app = _app(taker)
    status, _, _ = _call(app, CountingBody(_chat_with(mm_processor_kwargs=kwargs)), {})
    assert status == 200 and taker.requests[-1].mm_processor_kwargs == kwargs
    status, _, _ = _call(app, CountingBody(_chat_with()), {})
    assert status == 200 and taker.requests[-1].mm_processor_kwargs is None

    other = _backend()  # declares nothing: the base class's default
    app = _app(other)
    status, payload, _ = _call(app, CountingBody(_chat_with(mm_processor_kwargs=kwargs)), {})
    assert status == 400 and other.requests == []
    _assert_openai_error(payload, "unsupported", "mm_processor_kwargs", "recording backend")
    assert payload["error"]["param"] == "mm_processor_kwargs"
    # An empty dict asks for nothing: accepted everywhere.
    status, _, _ = _call(app, CountingBody(_chat_with(mm_processor_kwargs={})), {})
    assert status == 200 and other.requests[-1].mm_processor_kwargs is None


def test_only_vllm_declares_per_request_processor_arguments() -> None:
    pytest.importorskip("torch")  # the hf backend's module imports it
    from vlmhb_wrapper.backends import resolve_backend

    names = ("hf", "vllm", "sglang", "openai", "tesseract")
    declared = {name: resolve_backend(name).supports_mm_processor_kwargs for name in names}
    assert declared == {
        "hf": False, "vllm": True, "sglang": False, "openai": False, "tesseract": False,
    }  # fmt: skip
