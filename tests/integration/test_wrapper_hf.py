"""The Inference API Wrapper with the HF backend on the tiny models.

Most tests start the wrapper as a real subprocess (``python -m vlmhb_wrapper serve``) and talk
to it with the official ``openai`` client; a few run the app in-process to reach states a
subprocess cannot easily show (loading, load failure, a crashing ``generate``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
openai = pytest.importorskip("openai")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from transformers import AutoProcessor  # noqa: E402
from vlmhb_wrapper.app import create_app  # noqa: E402
from vlmhb_wrapper.backends import resolve_backend  # noqa: E402
from vlmhb_wrapper.backends.base import BackendConfig  # noqa: E402
from vlmhb_wrapper.backends.hf import HFBackend  # noqa: E402

torch.set_num_threads(1)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
QUESTION = "Что написано на изображении? Ответь кратко."
SYSTEM = "Ты — полезный ассистент."


# --------------------------------------------------------------------------------- helpers


def _png_bytes(size: tuple[int, int] = (96, 64), color: str = "white") -> bytes:
    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, size[0] - 5, size[1] // 3), outline="black", width=2)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _messages(image_url: str, question: str = QUESTION) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image_url}},
                {"type": "text", "text": question},
            ],
        },
    ]


@cache
def _processor(model_dir: Path) -> Any:
    return AutoProcessor.from_pretrained(model_dir)


def _expected_prompt_tokens(model_dir: Path, png: bytes, question: str = QUESTION) -> int:
    """What the processor makes of the same request, computed independently of the wrapper."""
    processor = _processor(model_dir)
    chat = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
    ]
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return int(processor(text=text, images=[image], return_tensors="pt")["input_ids"].shape[-1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    model_dir: Path
    base_url: str
    media_root: Path
    process: subprocess.Popen
    log_path: Path

    def client(self, **kwargs: object) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key="unused", max_retries=0, timeout=60, **kwargs
        )

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.base_url}/v1", api_key="unused", max_retries=0, timeout=60
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def _run_server(model_dir: Path, name: str, workdir: Path, *extra: str) -> Iterator[Server]:
    media_root = workdir / "media"
    media_root.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "wrapper.log"
    port = _free_port()
    command = [
        sys.executable, "-m", "vlmhb_wrapper", "serve",
        "--backend", "hf", "--model", str(model_dir), "--served-model-name", name,
        "--host", "127.0.0.1", "--port", str(port), "--threads", "1",
        "--allowed-media-root", str(media_root), "--log-level", "warning", *extra,
    ]  # fmt: skip
    pythonpath = os.pathsep.join([str(REPO / "wrapper" / "src"), str(REPO / "src")])
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(name, model_dir, f"http://127.0.0.1:{port}", media_root, process, log_path)
    try:
        _wait_ready(server, timeout_s=120)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: Server, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"wrapper exited with {server.process.returncode}:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{server.base_url}/health", timeout=2)
            if response.status_code == 200:
                assert response.json() == {"status": "ready"}
                return
            assert response.status_code == 503
            assert response.json()["status"] == "loading", response.text
        time.sleep(0.1)
    pytest.fail(f"wrapper not ready after {timeout_s}s:\n{server.log()}")


@pytest.fixture(scope="module")
def server_for(
    tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Server]]:
    """``server_for(arch)``: a running wrapper for that tiny model, started once per module."""
    servers: dict[str, Server] = {}
    with contextlib.ExitStack() as stack:

        def get(arch: str) -> Server:
            if arch not in servers:
                workdir = tmp_path_factory.mktemp(f"wrapper-{arch}")
                servers[arch] = stack.enter_context(
                    _run_server(
                        tiny_model_dirs[arch],
                        f"tiny-{arch}",
                        workdir,
                        "--max-image-pixels",
                        "1000000",
                    )
                )
            return servers[arch]

        yield get


@pytest.fixture
def server(server_for: Callable[[str], Server]) -> Iterator[Server]:
    srv = server_for("llava")
    yield srv
    # Whatever the test did, the server is still up and answering.
    assert srv.process.poll() is None, srv.log()
    assert httpx.get(f"{srv.base_url}/health", timeout=5).status_code == 200


def _assert_completion(
    resp: object, server: Server, *, max_tokens: int, prompt_tokens: int
) -> dict:
    data = resp.model_dump()  # type: ignore[attr-defined]
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["model"] == server.name
    assert isinstance(data["created"], int) and abs(data["created"] - time.time()) < 600
    (choice,) = data["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")

    usage, perf = data["usage"], data["performance"]
    assert usage["prompt_tokens"] == perf["prompt_tokens"] == prompt_tokens
    assert usage["completion_tokens"] == perf["completion_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 1 <= usage["completion_tokens"] <= max_tokens
    if choice["finish_reason"] == "length":
        assert usage["completion_tokens"] == max_tokens

    assert 0 < perf["ttft_ms"] <= perf["latency_ms"]
    assert perf["generate_ms"] <= perf["latency_ms"]
    assert perf["queue_ms"] >= 0 and perf["media_ms"] > 0 and perf["preprocess_ms"] > 0
    if usage["completion_tokens"] > 1:
        assert perf["tpot_ms"] > 0
    assert perf["tokens_per_s"] > 0
    assert perf["peak_memory_mb"] > 0
    assert perf["memory_source"] == "process_rss" and perf["device"] == "cpu"
    return data


# ---------------------------------------------------------------------- subprocess + openai


@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_sync_chat_completion_with_image(server_for: Callable[[str], Server], arch: str) -> None:
    server = server_for(arch)
    png = _png_bytes()
    with server.client() as client:
        resp = client.chat.completions.create(
            model=server.name, messages=_messages(_data_url(png)), max_tokens=8, temperature=0
        )
    _assert_completion(
        resp, server, max_tokens=8, prompt_tokens=_expected_prompt_tokens(server.model_dir, png)
    )


def test_max_completion_tokens_sampling_and_stop(server: Server) -> None:
    png = _png_bytes(color="lightgray")
    with server.client() as client:
        resp = client.chat.completions.create(
            model=server.name,
            messages=_messages(_data_url(png)),
            max_completion_tokens=5,
            temperature=0.8,
            top_p=0.9,
            seed=1,
            stop=["\n\n"],
        )
    data = _assert_completion(
        resp, server, max_tokens=5, prompt_tokens=_expected_prompt_tokens(server.model_dir, png)
    )
    assert "\n\n" not in data["choices"][0]["message"]["content"]


def test_concurrent_async_requests_are_all_answered(server: Server) -> None:
    png = _png_bytes()
    url = _data_url(png)
    # Different question lengths -> different prompt_tokens, so answers can be matched.
    questions = [f"{QUESTION} {'Итого? ' * i}".strip() for i in range(8)]
    expected = [_expected_prompt_tokens(server.model_dir, png, q) for q in questions]
    assert len(set(expected)) == len(expected)

    async def run() -> list:
        async with server.async_client() as client:
            return await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model=server.name, messages=_messages(url, q), max_tokens=i + 2
                    )
                    for i, q in enumerate(questions)
                )
            )

    responses = asyncio.run(run())
    perfs = []
    for i, resp in enumerate(responses):
        data = _assert_completion(resp, server, max_tokens=i + 2, prompt_tokens=expected[i])
        perfs.append(data["performance"])
    assert len({r.id for r in responses}) == len(responses)
    # Generation is serialized: someone had to wait for at least one other generation.
    assert max(p["queue_ms"] for p in perfs) >= 0.5 * min(p["generate_ms"] for p in perfs)


def test_models_endpoint(server: Server) -> None:
    with server.client() as client:
        assert [m.id for m in client.models.list().data] == [server.name]


def test_unknown_model_is_404(server: Server) -> None:
    with server.client() as client, pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(
            model="no-such-model", messages=_messages(_data_url(_png_bytes()))
        )
    assert err.value.status_code == 404
    body = err.value.body
    assert body["code"] == "model_not_found" and "no-such-model" in body["message"]


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        pytest.param(
            _data_url(b"this is not an image at all"), "cannot identify image", id="garbage"
        ),
        pytest.param(_data_url(_png_bytes()[:60]), "image", id="truncated-png"),
        pytest.param("data:image/png;base64,%%%not-base64%%%", "invalid base64", id="bad-base64"),
        pytest.param("data:image/png,rawbytes", "base64", id="not-base64-encoded"),
        pytest.param("data:image/png;base64,", "empty", id="empty"),
        pytest.param("https://example.com/cat.png", "remote image URLs", id="http"),
        pytest.param("/etc/passwd", "data: URL", id="bare-path"),
    ],
)
def test_bad_images_are_400(server: Server, url: str, needle: str) -> None:
    with server.client() as client, pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=server.name, messages=_messages(url), max_tokens=2)
    assert err.value.status_code == 400
    assert needle in err.value.body["message"], err.value.body
    assert err.value.body["type"] == "invalid_request_error"


def _png_with_header_size(width: int, height: int) -> bytes:
    """A real small PNG whose IHDR claims ``width x height`` (a decompression-bomb header)."""
    png = bytearray(_png_bytes((16, 16)))
    ihdr_data = bytearray(png[16:29])
    ihdr_data[0:8] = struct.pack(">II", width, height)
    png[16:29] = ihdr_data
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr_data)) & 0xFFFFFFFF)
    return bytes(png)


def test_too_many_pixels_is_refused_from_the_header(server: Server) -> None:
    with server.client() as client:
        for png in (_png_with_header_size(4000, 4000), _png_with_header_size(60000, 60000)):
            with pytest.raises(openai.BadRequestError) as err:
                client.chat.completions.create(
                    model=server.name, messages=_messages(_data_url(png)), max_tokens=2
                )
            assert err.value.body["code"] == "image_too_large"
            assert "pixels" in err.value.body["message"]


def test_file_urls_only_under_allowed_roots(server: Server, tmp_path: Path) -> None:
    png = _png_bytes((40, 40), color="yellow")
    inside = server.media_root / "doc.png"
    inside.write_bytes(png)
    outside = tmp_path / "secret.png"
    outside.write_bytes(png)
    escape = server.media_root / "escape.png"
    escape.unlink(missing_ok=True)
    escape.symlink_to(outside)

    with server.client() as client:
        resp = client.chat.completions.create(
            model=server.name, messages=_messages(inside.as_uri()), max_tokens=3
        )
        _assert_completion(
            resp, server, max_tokens=3,
            prompt_tokens=_expected_prompt_tokens(server.model_dir, png),
        )  # fmt: skip
        cases = [
            ((server.media_root / "missing.png").as_uri(), "not found"),
            (outside.as_uri(), "outside the allowed media roots"),
            (escape.as_uri(), "outside the allowed media roots"),
            (
                f"file://{server.media_root}/{os.path.relpath(outside, server.media_root)}",
                "outside the allowed",
            ),
        ]
        for url, needle in cases:
            with pytest.raises(openai.BadRequestError) as err:
                client.chat.completions.create(
                    model=server.name, messages=_messages(url), max_tokens=2
                )
            assert needle in err.value.body["message"], (url, err.value.body)


def test_invalid_parameters(server: Server) -> None:
    messages = [{"role": "user", "content": "Привет"}]
    with server.client() as client:
        with pytest.raises(openai.UnprocessableEntityError) as err:
            client.chat.completions.create(model=server.name, messages=messages, temperature=5)
        assert err.value.body["param"] == "temperature"
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model=server.name, messages=messages, n=2)
        assert err.value.body["param"] == "n"
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model=server.name, messages=messages, max_tokens=1_000_000
            )
        assert "limit" in err.value.body["message"]
        with pytest.raises(openai.BadRequestError) as err:  # tiny models have 2048 positions
            client.chat.completions.create(model=server.name, messages=messages, max_tokens=3000)
        assert err.value.body["code"] == "context_length_exceeded"
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model=server.name, messages=messages, stream=True)
        assert err.value.body["param"] == "stream"
        # Text-only requests work too.
        resp = client.chat.completions.create(model=server.name, messages=messages, max_tokens=2)
        assert resp.usage.completion_tokens <= 2


def test_health_and_routes_return_openai_errors(server: Server) -> None:
    assert httpx.get(f"{server.base_url}/health").json() == {"status": "ready"}
    response = httpx.get(f"{server.base_url}/v1/nope")
    assert response.status_code == 404 and "error" in response.json()
    response = httpx.post(f"{server.base_url}/v1/chat/completions", content=b"{not json")
    assert response.status_code == 422 and response.json()["error"]["type"]


# ------------------------------------------------------------------------------ in-process


def _hf_backend(model_dir: Path | str, name: str = "tiny") -> HFBackend:
    backend_cls = resolve_backend("hf")
    assert backend_cls is HFBackend
    return backend_cls(BackendConfig(model=str(model_dir), served_model_name=name, threads=1))


def _wait_health(client: TestClient, status: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = client.get("/health").json()
        if body["status"] == status:
            return body
        time.sleep(0.05)
    raise AssertionError(f"health never became {status!r}")


def test_health_reports_loading_then_ready(tiny_model_dirs: dict[str, Path]) -> None:
    gate = threading.Event()

    class SlowBackend(HFBackend):
        async def _load(self) -> None:
            await asyncio.to_thread(gate.wait, 30)
            await super()._load()

    backend = SlowBackend(BackendConfig(model=str(tiny_model_dirs["llava"]), served_model_name="t"))
    with TestClient(create_app(backend)) as client:
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json() == {"status": "loading", "detail": "model is loading"}
        response = client.post(
            "/v1/chat/completions",
            json={"model": "t", "messages": [{"role": "user", "content": "a"}]},
        )
        assert response.status_code == 503 and response.json()["error"]["code"] == "model_not_ready"
        gate.set()
        _wait_health(client, "ready")
        assert client.get("/health").status_code == 200


def test_health_reports_load_failure(tmp_path: Path) -> None:
    with TestClient(create_app(_hf_backend(tmp_path / "does-not-exist"))) as client:
        body = _wait_health(client, "failed")
        assert client.get("/health").status_code == 503
        assert "does-not-exist" in body["detail"]


def test_generation_error_is_500_and_server_survives(
    tiny_model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = _hf_backend(tiny_model_dirs["idefics3"])
    request = {"model": "tiny", "messages": _messages(_data_url(_png_bytes())), "max_tokens": 3}
    with TestClient(create_app(backend), raise_server_exceptions=False) as client:
        _wait_health(client, "ready")

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("CUDA out of memory (simulated)")

        monkeypatch.setattr(backend._model, "generate", boom)
        response = client.post("/v1/chat/completions", json=request)
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["type"] == "server_error" and "out of memory (simulated)" in error["message"]

        monkeypatch.undo()
        response = client.post("/v1/chat/completions", json=request)
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] >= 1


def test_api_key_is_enforced_on_v1_routes(tiny_model_dirs: dict[str, Path]) -> None:
    backend = _hf_backend(tiny_model_dirs["llava"])
    request = {"model": "tiny", "messages": [{"role": "user", "content": "a"}], "max_tokens": 2}
    with TestClient(create_app(backend, api_key="s3cret")) as client:
        _wait_health(client, "ready")  # /health needs no key
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = client.post("/v1/chat/completions", json=request, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "invalid_api_key"
        assert client.get("/v1/models").status_code == 401
        ok = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/chat/completions", json=request, headers=ok).status_code == 200
        assert client.get("/v1/models", headers=ok).json()["data"][0]["id"] == "tiny"


def test_cli_rejects_port_zero_and_unknown_backend() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "wrapper" / "src")}
    base = [sys.executable, "-m", "vlmhb_wrapper", "serve", "--model", "x"]
    result = subprocess.run([*base, "--port", "0"], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "port must be in 1..65535" in result.stderr
    result = subprocess.run(
        [*base, "--backend", "nope", "--port", "1234"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 1 and "unknown backend 'nope'" in result.stderr
