"""The Inference API Wrapper with the HF backend on the tiny models.

Most tests start the wrapper as a real subprocess (``python -m vlmhb_wrapper serve``) and talk
to it with the official ``openai`` client (sync and async); a few run the app in-process to
reach states a subprocess cannot easily show (loading, load failure, a crashing ``generate``).
Answers are checked against an independent ``transformers`` run of the same model.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: E402
from vlmhb_wrapper.app import create_app  # noqa: E402
from vlmhb_wrapper.backends import resolve_backend  # noqa: E402
from vlmhb_wrapper.backends.base import BackendConfig  # noqa: E402
from vlmhb_wrapper.backends.hf import HFBackend  # noqa: E402
from vlmhb_wrapper.backends.hf.row_control import RowStopper  # noqa: E402
from vlmhb_wrapper.schemas import ChatCompletionChunk  # noqa: E402

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


def _messages(image_url: str | None, question: str = QUESTION) -> list[dict]:
    content: list[dict] = [{"type": "text", "text": question}]
    if image_url is not None:
        content.insert(0, {"type": "image_url", "image_url": {"url": image_url}})
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]


@cache
def _processor(model_dir: Path) -> Any:
    return AutoProcessor.from_pretrained(model_dir)


@cache
def _model(model_dir: Path) -> Any:
    return AutoModelForImageTextToText.from_pretrained(model_dir).eval()


def _reference_inputs(model_dir: Path, png: bytes | None, question: str = QUESTION) -> Any:
    """What the processor makes of the same request, computed independently of the wrapper."""
    processor = _processor(model_dir)
    user: list[dict] = [{"type": "text", "text": question}]
    if png is not None:
        user.insert(0, {"type": "image"})
    chat = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {"role": "user", "content": user},
    ]
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    images = [Image.open(io.BytesIO(png)).convert("RGB")] if png is not None else None
    return processor(text=text, images=images, return_tensors="pt")


def _expected_prompt_tokens(model_dir: Path, png: bytes | None, question: str = QUESTION) -> int:
    return int(_reference_inputs(model_dir, png, question)["input_ids"].shape[-1])


def _reference_answer(
    model_dir: Path, png: bytes | None, max_new_tokens: int, question: str = QUESTION
) -> tuple[str, int, str]:
    """Greedy ``transformers`` generate of the same prompt: (text, tokens, finish_reason)."""
    inputs = _reference_inputs(model_dir, png, question)
    model = _model(model_dir)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new_ids = out[0, inputs["input_ids"].shape[-1] :].tolist()
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    if any(t in eos_ids for t in new_ids):  # HF pads nothing for a single row; cut at EOS
        new_ids = new_ids[: next(i for i, t in enumerate(new_ids) if t in eos_ids) + 1]
    finish = "stop" if new_ids[-1] in eos_ids else "length"
    text = _processor(model_dir).tokenizer.decode(new_ids, skip_special_tokens=True)
    return text, len(new_ids), finish


@pytest.fixture(scope="module")
def server_for(
    tiny_model_dirs: dict[str, Path], start_wrapper: Callable[..., Any]
) -> Iterator[Callable[[str], Any]]:
    """``server_for(arch)``: a running wrapper for that tiny model, started once per module."""
    servers: dict[str, Any] = {}

    def get(arch: str) -> Any:
        if arch not in servers:
            media_root = tiny_model_dirs[arch].parent / f"media-{arch}"
            media_root.mkdir(exist_ok=True)
            server = start_wrapper(
                "--backend", "hf", "--model", str(tiny_model_dirs[arch]), "--threads", "1",
                "--allowed-media-root", str(media_root), "--max-image-pixels", "1000000",
                name=f"tiny-{arch}",
            )  # fmt: skip
            server.model_dir = tiny_model_dirs[arch]
            server.media_root = media_root
            servers[arch] = server
        return servers[arch]

    yield get


@pytest.fixture
def server(server_for: Callable[[str], Any]) -> Iterator[Any]:
    srv = server_for("llava")
    yield srv
    # Whatever the test did, the server is still up and answering.
    assert srv.process.poll() is None, srv.log()
    assert httpx.get(f"{srv.base_url}/health", timeout=5).status_code == 200


def _check_performance(perf: dict, usage: dict) -> None:
    assert perf["prompt_tokens"] == usage["prompt_tokens"]
    assert perf["completion_tokens"] == usage["completion_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 <= perf["queue_ms"] < perf["ttft_ms"] <= perf["latency_ms"]
    assert perf["generate_ms"] <= perf["latency_ms"]
    assert perf["preprocess_ms"] > 0 and perf["media_ms"] >= 0
    if usage["completion_tokens"] > 1:
        assert perf["tpot_ms"] > 0
        # TTFT + (n - 1) * TPOT spans first to last token: never beyond the latency.
        span = perf["ttft_ms"] + (usage["completion_tokens"] - 1) * perf["tpot_ms"]
        assert span <= perf["latency_ms"] + 0.01
    else:
        assert perf["tpot_ms"] is None
    assert perf["tokens_per_s"] > 0
    assert perf["peak_memory_mb"] > 0
    assert perf["memory_source"] == "process_rss" and perf["device"] == "cpu"
    assert perf["backend"] == "hf" and perf["batch_size"] >= 1


def _assert_completion(resp: Any, server: Any, *, max_tokens: int, prompt_tokens: int) -> dict:
    data = resp.model_dump()
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
    assert usage["prompt_tokens"] == prompt_tokens
    assert 1 <= usage["completion_tokens"] <= max_tokens
    if choice["finish_reason"] == "length":
        assert usage["completion_tokens"] == max_tokens
    _check_performance(perf, usage)
    return data


def _collect_stream(stream: Any) -> tuple[str, list[dict]]:
    chunks = [chunk.model_dump(exclude_unset=True) for chunk in stream]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)  # every event has the OpenAI chunk shape
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return text, chunks


# ---------------------------------------------------------------------- subprocess + openai


@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_answer_equals_transformers_generate(server_for: Callable[[str], Any], arch: str) -> None:
    """Same text, token counts and finish reason as transformers' own greedy generate."""
    server = server_for(arch)
    png = _png_bytes()
    text, tokens, finish = _reference_answer(server.model_dir, png, max_new_tokens=8)
    with server.client() as client:
        resp = client.chat.completions.create(
            model=server.name, messages=_messages(_data_url(png)), max_tokens=8, temperature=0
        )
    data = _assert_completion(
        resp, server, max_tokens=8, prompt_tokens=_expected_prompt_tokens(server.model_dir, png)
    )
    assert data["choices"][0]["message"]["content"] == text
    assert data["usage"]["completion_tokens"] == tokens
    assert data["choices"][0]["finish_reason"] == finish


def test_streaming_with_usage_matches_non_streaming(server: Any) -> None:
    png = _png_bytes((64, 48), "lightblue")
    messages = _messages(_data_url(png))
    with server.client() as client:
        full = client.chat.completions.create(
            model=server.name, messages=messages, max_tokens=12, extra_body={"ignore_eos": True}
        )
        stream = client.chat.completions.create(
            model=server.name,
            messages=messages,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        text, chunks = _collect_stream(stream)
    assert text == full.choices[0].message.content
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    # Every chunk has usage null except the extra last one (choices []) with usage + perf.
    assert all(c["usage"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"] == full.usage.model_dump(exclude_unset=True)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert len({c["id"] for c in chunks}) == 1
    assert all("performance" not in c for c in chunks[:-1])
    perf = last["performance"]
    _check_performance(perf, last["usage"])
    assert last["usage"]["completion_tokens"] == 12
    assert last["usage"]["prompt_tokens"] == _expected_prompt_tokens(server.model_dir, png)
    content_chunks = [c for c in chunks[1:-2] if c["choices"][0]["delta"].get("content")]
    assert 1 <= len(content_chunks) <= 12


def test_async_streaming_without_usage_puts_performance_on_the_finish_chunk(server: Any) -> None:
    async def run() -> list[dict]:
        async with server.async_client() as client:
            stream = await client.chat.completions.create(
                model=server.name,
                messages=[{"role": "user", "content": "Привет"}],
                max_tokens=4,
                stream=True,
                extra_body={"ignore_eos": True},
            )
            return [chunk.model_dump(exclude_unset=True) async for chunk in stream]

    chunks = asyncio.run(run())
    assert all("usage" not in c for c in chunks)
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "length"
    perf = last["performance"]
    assert perf["completion_tokens"] == 4 and perf["ttft_ms"] <= perf["latency_ms"]
    assert perf["prompt_tokens"] == _count_plain_prompt(server, "Привет")


def _count_plain_prompt(server: Any, question: str) -> int:
    """Prompt tokens of a user-only chat (no system message), computed independently."""
    processor = _processor(server.model_dir)
    chat = [{"role": "user", "content": [{"type": "text", "text": question}]}]
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    return int(processor(text=text, return_tensors="pt")["input_ids"].shape[-1])


def test_stop_sequences_cut_the_answer_streaming_or_not(server: Any) -> None:
    messages = [{"role": "user", "content": "Итого к оплате?"}]
    extra = {"ignore_eos": True}
    with server.client() as client:
        full = client.chat.completions.create(
            model=server.name, messages=messages, max_tokens=24, extra_body=extra
        )
        text = full.choices[0].message.content
        assert len(text) >= 6, text
        stop = text[3:5]
        cut = text.index(stop)
        resp = client.chat.completions.create(
            model=server.name, messages=messages, max_tokens=24, stop=[stop], extra_body=extra
        )
        assert resp.choices[0].message.content == text[:cut]
        assert resp.choices[0].finish_reason == "stop"
        assert resp.usage.completion_tokens < 24
        streamed, chunks = _collect_stream(
            client.chat.completions.create(
                model=server.name,
                messages=messages,
                max_tokens=24,
                stop=stop,
                stream=True,
                stream_options={"include_usage": True},
                extra_body=extra,
            )
        )
    assert streamed == text[:cut]
    assert chunks[-1]["usage"]["completion_tokens"] == resp.usage.completion_tokens


def test_max_completion_tokens_and_seeded_sampling(server: Any) -> None:
    messages = [{"role": "user", "content": "Какая сумма указана в документе?"}]

    def sample(seed: int) -> Any:
        return client.chat.completions.create(
            model=server.name,
            messages=messages,
            max_completion_tokens=10,
            temperature=1.0,
            top_p=0.95,
            seed=seed,
            extra_body={"ignore_eos": True},
        )

    with server.client() as client:
        first, again = sample(7), sample(7)
        others = {sample(seed).choices[0].message.content for seed in (8, 9, 10)}
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.usage.completion_tokens == 10 and first.choices[0].finish_reason == "length"
    assert others != {first.choices[0].message.content}, "the seed changed nothing"


def test_concurrent_async_requests_are_batched_and_matched(server: Any) -> None:
    png = _png_bytes()
    url = _data_url(png)
    # Different question lengths -> different prompt_tokens, so answers can be matched.
    questions = [f"{QUESTION} {'Итого? ' * i}".strip() for i in range(8)]
    expected = [_expected_prompt_tokens(server.model_dir, png, q) for q in questions]
    assert len(set(expected)) == len(expected)
    with server.client() as client:  # one at a time first: the reference answers
        alone = [
            client.chat.completions.create(
                model=server.name, messages=_messages(url, q), max_tokens=6
            )
            for q in questions
        ]

    async def run() -> list:
        async with server.async_client() as client:
            return await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model=server.name, messages=_messages(url, q), max_tokens=6
                    )
                    for q in questions
                )
            )

    together = asyncio.run(run())
    sizes = []
    for i, resp in enumerate(together):
        data = _assert_completion(resp, server, max_tokens=6, prompt_tokens=expected[i])
        assert resp.choices[0].message.content == alone[i].choices[0].message.content
        sizes.append(data["performance"]["batch_size"])
    assert len({r.id for r in together}) == len(together)
    assert max(sizes) > 1, f"nothing was batched: {sizes}"
    assert all(a.model_extra["performance"]["batch_size"] == 1 for a in alone)


def test_client_disconnect_cancels_generation(server: Any) -> None:
    """Closing a stream early stops its row in the batch: far fewer tokens are generated than
    the 1900 asked for."""

    def values() -> dict[str, float]:
        return _prometheus_values(httpx.get(f"{server.base_url}/metrics").text)

    before = values()["vlmhb_hf_generated_tokens_total"]
    with server.client() as client:
        stream = client.chat.completions.create(
            model=server.name,
            messages=[{"role": "user", "content": "Итого?"}],
            max_tokens=1900,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        received = 0
        for chunk in stream:
            received += bool(chunk.choices and chunk.choices[0].delta.content)
            if received == 3:
                break
        stream.close()  # the client goes away
    deadline = time.monotonic() + 60
    while (now := values())["vlmhb_hf_active_rows"] or now["vlmhb_requests_in_flight"]:
        assert time.monotonic() < deadline, now
        time.sleep(0.05)
    generated = now["vlmhb_hf_generated_tokens_total"] - before
    assert 3 <= generated < 1900, generated


def test_models_endpoints_and_unknown_model(server: Any) -> None:
    with server.client() as client:
        assert [m.id for m in client.models.list().data] == [server.name]
        assert client.models.retrieve(server.name).id == server.name
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("nope")
        with pytest.raises(openai.NotFoundError) as err:
            client.chat.completions.create(
                model="no-such-model", messages=_messages(_data_url(_png_bytes()))
            )
    assert err.value.status_code == 404
    body = err.value.body
    assert body["code"] == "model_not_found" and "no-such-model" in body["message"]
    assert body["type"] == "invalid_request_error" and body["param"] == "model"


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
        pytest.param("data:text/plain;base64,aGk=", "image/*", id="not-an-image-type"),
        pytest.param("https://example.com/cat.png", "disabled", id="http"),
        pytest.param("/etc/passwd", "data: URL", id="bare-path"),
    ],
)
def test_bad_images_are_400(server: Any, url: str, needle: str) -> None:
    with server.client() as client, pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=server.name, messages=_messages(url), max_tokens=2)
    assert err.value.status_code == 400
    assert needle in err.value.body["message"], err.value.body
    assert err.value.body["type"] == "invalid_request_error"


def test_invalid_parameters(server: Any) -> None:
    messages = [{"role": "user", "content": "Привет"}]
    create = None
    with server.client() as client:
        create = client.chat.completions.create
        with pytest.raises(openai.UnprocessableEntityError) as err:
            create(model=server.name, messages=messages, temperature=5)
        assert err.value.body["param"] == "temperature"
        with pytest.raises(openai.UnprocessableEntityError) as err:
            create(model=server.name, messages=[{"role": "user", "content": [{"type": "x"}]}])
        assert err.value.body["code"] == "validation_error"
        cases: list[tuple[dict, str, str | None]] = [
            ({"n": 2}, "n", None),
            ({"max_tokens": 1_000_000}, "max_tokens", None),
            ({"max_tokens": 3000}, "messages", "context_length_exceeded"),  # 2048 positions
            ({"stop": ["a", "b", "c", "d", "e"]}, "stop", None),
            ({"logprobs": True}, "logprobs", "unsupported"),
            ({"presence_penalty": 0.5}, "presence_penalty", "unsupported"),
            (
                {
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "x", "schema": {"type": "object"}},
                    }
                },
                "response_format",
                "unsupported_response_format",
            ),
            ({"extra_body": {"min_tokens": 5}, "max_tokens": 2}, "min_tokens", None),
        ]
        for kwargs, param, code in cases:
            with pytest.raises(openai.BadRequestError) as err:
                create(model=server.name, messages=messages, **kwargs)
            assert err.value.body["param"] == param, (kwargs, err.value.body)
            if code:
                assert err.value.body["code"] == code
        with pytest.raises(openai.BadRequestError) as err:  # also when streaming: a real 400
            create(model=server.name, messages=messages, max_tokens=3000, stream=True)
        assert err.value.body["code"] == "context_length_exceeded"
        # response_format text is the default and accepted; text-only requests work too.
        resp = create(
            model=server.name,
            messages=messages,
            max_tokens=2,
            response_format={"type": "text"},
        )
        assert resp.usage.completion_tokens <= 2


def test_health_metrics_and_route_errors(server: Any) -> None:
    with server.client() as client:
        client.chat.completions.create(model=server.name, messages=_text_only(), max_tokens=2)
    assert httpx.get(f"{server.base_url}/health").json() == {"status": "ready"}
    response = httpx.get(f"{server.base_url}/v1/nope")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = httpx.post(f"{server.base_url}/v1/chat/completions", content=b"{not json")
    assert response.status_code == 422 and response.json()["error"]["type"]
    metrics = httpx.get(f"{server.base_url}/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    values = _prometheus_values(metrics.text)
    ok = values.get(
        'vlmhb_requests_total{route="/v1/chat/completions",status="200",stream="false"}', 0
    )
    assert ok >= 1
    assert values['vlmhb_backend_state{state="ready"}'] == 1
    assert values["vlmhb_requests_in_flight"] == 0
    assert values["vlmhb_completion_tokens_total"] >= 1
    assert values["vlmhb_request_latency_seconds_count"] >= ok
    assert values["vlmhb_hf_batch_queue_depth"] == 0


def _text_only() -> list[dict]:
    return [{"role": "user", "content": "Привет"}]


def _prometheus_values(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


# ------------------------------------------------------------------------------ in-process


def _hf_backend(model_dir: Path | str, name: str = "tiny", **kwargs: Any) -> HFBackend:
    backend_cls = resolve_backend("hf")
    assert backend_cls is HFBackend
    config = BackendConfig(model=str(model_dir), served_model_name=name, threads=1, **kwargs)
    return backend_cls(config)


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
        response = client.post(
            "/v1/chat/completions",
            json={"model": "tiny", "messages": [{"role": "user", "content": "a"}]},
        )
        assert response.status_code == 503


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
        streamed = client.post("/v1/chat/completions", json={**request, "stream": True})
        assert streamed.status_code == 500  # nothing was generated: still a plain HTTP error

        monkeypatch.undo()
        response = client.post("/v1/chat/completions", json=request)
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] >= 1


def test_generation_error_mid_stream_is_an_error_event(
    tiny_model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after tokens were sent ends the SSE stream with an OpenAI error event."""
    backend = _hf_backend(tiny_model_dirs["llava"])
    with TestClient(create_app(backend), raise_server_exceptions=False) as client:
        _wait_health(client, "ready")
        original = RowStopper.__call__

        def failing(self: Any, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            if self.rows[0].count >= 3:
                raise RuntimeError("device lost (simulated)")
            return original(self, input_ids, scores, **kwargs)

        monkeypatch.setattr(RowStopper, "__call__", failing)
        body = {
            "model": "tiny",
            "messages": [{"role": "user", "content": "Привет"}],
            "max_tokens": 20,
            "ignore_eos": True,
            "stream": True,
        }
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert "[DONE]" not in events
        assert "device lost (simulated)" in events[-1] and '"error"' in events[-1]


def test_eos_min_tokens_and_ignore_eos(tiny_model_dirs: dict[str, Path]) -> None:
    """Make the greedy first token the model's EOS: the answer then stops after one token;
    ``min_tokens`` suppresses that EOS for its first steps; ``ignore_eos`` runs to max_tokens."""
    backend = _hf_backend(tiny_model_dirs["llava"])
    request = {"model": "tiny", "messages": [{"role": "user", "content": "Итого?"}]}
    with TestClient(create_app(backend)) as client:
        _wait_health(client, "ready")
        probe = client.post("/v1/chat/completions", json={**request, "max_tokens": 1}).json()
        assert probe["usage"]["completion_tokens"] == 1
        first_token = backend._processor.tokenizer.encode(
            probe["choices"][0]["message"]["content"], add_special_tokens=False
        )
        assert len(first_token) == 1, probe
        backend._eos_ids = set(first_token)  # the greedy first token now ends the answer

        ended = client.post("/v1/chat/completions", json={**request, "max_tokens": 10}).json()
        assert ended["usage"]["completion_tokens"] == 1
        assert ended["choices"][0]["finish_reason"] == "stop"
        assert (
            ended["choices"][0]["message"]["content"] == probe["choices"][0]["message"]["content"]
        )

        delayed = client.post(
            "/v1/chat/completions", json={**request, "max_tokens": 10, "min_tokens": 4}
        ).json()
        assert delayed["usage"]["completion_tokens"] >= 4

        ignored = client.post(
            "/v1/chat/completions", json={**request, "max_tokens": 10, "ignore_eos": True}
        ).json()
        assert ignored["usage"]["completion_tokens"] == 10
        assert ignored["choices"][0]["finish_reason"] == "length"


def test_cli_rejects_bad_arguments() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "wrapper" / "src")}
    base = [sys.executable, "-m", "vlmhb_wrapper", "serve", "--model", "x"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, env=env)

    result = run("--port", "0")
    assert result.returncode == 2 and "port must be in 1..65535" in result.stderr
    result = run("--backend", "nope", "--port", "1234")
    assert result.returncode == 1 and "unknown backend 'nope'" in result.stderr
    result = run("--engine-args-json", "[1]")
    assert result.returncode == 2 and "must be a JSON object" in result.stderr
    result = run("--backend", "vllm", "--engine-args-json", '{"mem_fraction_static": 0.8}')
    assert result.returncode == 1 and "use gpu_memory_utilization" in result.stderr
    result = run("--backend", "sglang", "--engine-args-json", '{"max_model_lenn": 8}')
    assert result.returncode == 1 and "unknown engine args ['max_model_lenn']" in result.stderr
    result = run("--backend", "openai")
    assert result.returncode == 1 and "--upstream-base-url" in result.stderr
    result = run("--api-key-env", "VLMHB_TEST_SURELY_UNSET")
    assert result.returncode == 1 and "VLMHB_TEST_SURELY_UNSET" in result.stderr
