"""Expensive requests refused cheaply by a real wrapper process (HF backend, API key on):
the issue's three bodies, sent with the official ``openai`` client and httpx, each answered
with an OpenAI-shaped error while the server's RSS (sampled from outside with psutil) barely
moves. ``benchmarks/wrapper_refusals.py`` prints the same figures as a table."""

from __future__ import annotations

import base64
import io
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("torch")
psutil = pytest.importorskip("psutil")

from PIL import Image  # noqa: E402

pytestmark = pytest.mark.slow

API_KEY = "sk-vlmhb-" + secrets.token_hex(16)
MB = 1 << 20


@pytest.fixture(scope="module")
def server(start_wrapper: Any, tiny_model_dirs: dict[str, Path]) -> Any:
    # The limits under test are the defaults.
    return start_wrapper(
        "--backend", "hf", "--model", str(tiny_model_dirs["llava"]), "--threads", "1",
        "--api-key-env", "VLMHB_TEST_WRAPPER_KEY", "--no-access-log",
        env={"VLMHB_TEST_WRAPPER_KEY": API_KEY},
        api_key=API_KEY,
    )  # fmt: skip


class PeakRSS:
    """The server's RSS growth over the block: sampled every 2 ms from a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.before = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.before) / MB

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.05)
        self._stop.set()
        self._thread.join()


def _error(exc: Any) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def _still_serves(server: Any) -> None:
    with server.client() as client:
        answer = client.chat.completions.create(
            model=server.name, messages=[{"role": "user", "content": "Итого?"}], max_tokens=2
        )
    assert answer.usage.completion_tokens <= 2


def test_unauthenticated_60_mb_body_is_refused_without_being_kept(server: Any) -> None:
    sent = 0

    def body() -> Iterator[bytes]:  # a chunked upload that counts what the server took
        nonlocal sent
        chunk = b"x" * MB
        for _ in range(60):
            sent += len(chunk)
            yield chunk

    with PeakRSS(server.process.pid) as rss:
        response = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            content=body(),
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert rss.growth_mb < 20, rss.growth_mb  # dropped as it arrived, never buffered
    assert sent == 60 * MB  # drained, so the client reads the 401 instead of a reset

    # A client that waits for "100 Continue" is answered before it sends a byte of the body.
    host, port = urlsplit(server.base_url).hostname, urlsplit(server.base_url).port
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 62914560\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"100 Continue" not in answer and b"invalid_api_key" in answer
    _still_serves(server)


def test_sixteen_7000px_pngs_in_1_mb_are_refused_from_their_headers(server: Any) -> None:
    buf = io.BytesIO()
    Image.new("L", (7000, 7000), 255).save(buf, format="PNG", optimize=True)
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    content = [{"type": "image_url", "image_url": {"url": url}} for _ in range(16)]
    content.append({"type": "text", "text": "Что на страницах?"})
    assert len(url) * 16 < 2 * MB  # 49 Mpx each, under the per-image limit; 784 Mpx in all

    with server.client() as client, PeakRSS(server.process.pid) as rss:
        start = time.perf_counter()
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(
                model=server.name, messages=[{"role": "user", "content": content}], max_tokens=2
            )
        seconds = time.perf_counter() - start
    assert refused.value.status_code == 413
    error = _error(refused.value)
    assert error["code"] == "request_pixels_too_large"
    assert "--max-request-pixels" in error["message"] and "100000000" in error["message"]
    # Decoding them took 1.45 -> 6.4 GB and 19 s before; headers only now.
    assert rss.growth_mb < 100, rss.growth_mb
    assert seconds < 5, seconds
    _still_serves(server)


def test_a_30_mb_text_is_refused_before_tokenising(server: Any) -> None:
    text = "word " * (6 * MB)
    with (
        server.client() as client,
        PeakRSS(server.process.pid) as rss,
        pytest.raises(openai.APIStatusError) as refused,
    ):
        client.chat.completions.create(
            model=server.name, messages=[{"role": "user", "content": text}], max_tokens=2
        )
    assert refused.value.status_code == 413
    error = _error(refused.value)
    assert error["code"] == "text_too_large" and "--max-request-chars" in error["message"]
    assert rss.growth_mb < 100, rss.growth_mb  # before: 0.38 -> 4.3 GB
    _still_serves(server)


def test_per_request_processor_arguments_are_refused_naming_the_field_and_backend(
    server: Any,
) -> None:
    """The hf backend fixes its processor's arguments when the model loads: a request asking
    for others (vLLM's ``mm_processor_kwargs``) is refused, not answered as if applied."""
    with server.client() as client, pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=server.name,
            messages=[{"role": "user", "content": "Итого?"}],
            max_tokens=2,
            extra_body={"mm_processor_kwargs": {"max_pixels": 401408}},
        )
    error = _error(refused.value)
    assert error["param"] == "mm_processor_kwargs" and error["code"] == "unsupported"
    assert "mm_processor_kwargs" in error["message"] and "hf backend" in error["message"]
    assert "engine_args" in error["message"]  # where hf does take them
    _still_serves(server)
