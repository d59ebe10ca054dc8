"""The wrapper's parts without a model server: media policy, security, streaming text,
batch collation and per-row control, telemetry, metrics, SSE chunks, engine commands, the
upstream proxy's request/error mapping, and the backend plugin interface."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFile
from vlmhb_wrapper import backends as backends_module
from vlmhb_wrapper.app import create_app
from vlmhb_wrapper.backends import resolve_backend
from vlmhb_wrapper.backends.base import (
    Backend,
    BackendConfig,
    GenerationRequest,
    GenerationResult,
    MemoryReading,
    PromptMessage,
    StreamEvent,
    TextDelta,
    TextSegment,
)
from vlmhb_wrapper.backends.engine import EngineOptions, SGLangBackend, VLLMBackend
from vlmhb_wrapper.backends.proxy import OpenAIUpstream, _relay
from vlmhb_wrapper.errors import InvalidRequestError, PayloadTooLargeError
from vlmhb_wrapper.media import MediaLimits, MediaLoader
from vlmhb_wrapper.prometheus import Counter, Gauge, Histogram, Registry
from vlmhb_wrapper.schemas import ChatCompletionChunk, Performance
from vlmhb_wrapper.security import RedactSecretsFilter, api_key_matches, register_secret
from vlmhb_wrapper.serving_chat import ChunkWriter
from vlmhb_wrapper.telemetry import MemoryMonitor, MemoryProbe, performance_of

# ------------------------------------------------------------------------------------ media


def _png(size: tuple[int, int] = (20, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, "blue").save(buf, format="PNG")
    return buf.getvalue()


def _with_header_size(png: bytes, width: int, height: int) -> bytes:
    data = bytearray(png)
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_media_decompression_bomb_is_refused_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[Any] = []
    real_load = ImageFile.ImageFile.load

    def spy(self: Any) -> Any:
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    loader = MediaLoader(limits=MediaLimits(max_image_pixels=1_000_000))
    with pytest.raises(PayloadTooLargeError, match="pixels") as err:
        loader.load(_data_url(_with_header_size(_png(), 50_000, 50_000)))
    assert err.value.status_code == 413 and err.value.code == "image_too_large"
    assert decoded == []
    image = loader.load(_data_url(_png()))  # the spy does see a real decode
    assert image.image is not None and decoded and set(decoded) == {(20, 10)}


def test_media_oversized_data_url_is_refused_before_base64_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = base64.b64decode
    monkeypatch.setattr(
        "vlmhb_wrapper.media.base64.b64decode", lambda s, **k: calls.append(1) or real(s, **k)
    )
    loader = MediaLoader(limits=MediaLimits(max_image_bytes=1000))
    with pytest.raises(PayloadTooLargeError, match="bytes"):
        loader.load(_data_url(b"\x00" * 5000))
    assert calls == []


def test_media_check_only_mode_and_data_urls(tmp_path: Path) -> None:
    png = _png()
    (tmp_path / "a.png").write_bytes(png)
    loader = MediaLoader(allowed_media_roots=[tmp_path])
    url = _data_url(png)
    checked = loader.load(url, decode=False)
    assert checked.image is None and checked.data_url == url  # the client's bytes, unchanged
    assert (checked.width, checked.height) == (20, 10)
    from_file = loader.load((tmp_path / "a.png").as_uri(), decode=False)
    assert from_file.data_url == url  # file:// is inlined for proxied backends
    with pytest.raises(InvalidRequestError, match=r"'\.\.'"):
        loader.load(f"file://{tmp_path}/x/../a.png")
    with pytest.raises(InvalidRequestError, match="disabled"):
        MediaLoader().load((tmp_path / "a.png").as_uri())
    with pytest.raises(InvalidRequestError, match="disabled"):
        loader.load("https://example.com/a.png")


# --------------------------------------------------------------------------------- security


def test_api_key_matches_bearer_or_x_api_key() -> None:
    key = "k-123456"
    assert api_key_matches({"authorization": f"Bearer {key}"}, key)
    assert api_key_matches({"authorization": f"bearer  {key} "}, key)
    assert api_key_matches({"x-api-key": key}, key)
    assert api_key_matches({"authorization": "Bearer wrong", "x-api-key": key}, key)
    for headers in (
        {},
        {"authorization": key},
        {"authorization": f"Basic {key}"},
        {"x-api-key": ""},
    ):
        assert not api_key_matches(headers, key)


def test_body_limit_counts_chunked_bodies() -> None:
    app = create_app(_EchoBackend(BackendConfig(model="echo")), max_request_bytes=1000)

    def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 100

    with TestClient(app) as client:
        response = client.post("/v1/chat/completions", content=chunks())
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        small = client.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert small.status_code == 200


def test_redaction_keeps_access_log_arguments_usable() -> None:
    register_secret("s3cret-value")
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/v1/models?key=s3cret-value", "1.1", 200),
        None,
    )
    assert RedactSecretsFilter().filter(record)
    assert record.getMessage() == '127.0.0.1:1 - "GET /v1/models?key=*** HTTP/1.1" 200'
    try:
        raise RuntimeError("boom s3cret-value")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    RedactSecretsFilter().filter(record)
    assert "s3cret-value" not in logging.Formatter().format(record)


# -------------------------------------------------------------------------- streaming text


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    pytest.importorskip("transformers")
    from vlmhyperbench.models.tiny_tokenizer import build_tokenizer

    return build_tokenizer(["<image>"], eos_token="</s>")


def test_incremental_text_holds_partial_characters(tokenizer: Any) -> None:
    from vlmhb_wrapper.backends.hf.detokenize import IncrementalText

    text = "Счёт № 1245 🙂 итого 15 300,00 руб. 漢字"
    ids = tokenizer.encode(text, add_special_tokens=False)
    stream = IncrementalText(tokenizer)
    deltas = [stream.push(i) for i in ids]
    deltas.append(stream.finish())
    assert "".join(deltas) == tokenizer.decode(ids, skip_special_tokens=True) == text
    assert not any("\ufffd" in d for d in deltas)
    assert len([d for d in deltas if d]) > 3  # it streamed, it did not just flush at the end


def test_incremental_text_stop_sequences(tokenizer: Any) -> None:
    from vlmhb_wrapper.backends.hf.detokenize import IncrementalText

    text = "Итого к оплате: 15 300 руб."
    ids = tokenizer.encode(text, add_special_tokens=False)
    for stops, expected in (
        (["оплате"], "Итого к "),
        (["руб", "к опл"], "Итого "),  # the earliest match wins
        (["нет такого"], text),
    ):
        stream = IncrementalText(tokenizer, stops)
        deltas = []
        for i in ids:
            deltas.append(stream.push(i))
            if stream.stopped:
                break
        deltas.append(stream.finish())
        assert "".join(deltas) == stream.text == expected
        # No delta ever carried a piece of the stop sequence that was then taken back.
        assert all(expected.startswith("".join(deltas[: k + 1])) for k in range(len(deltas)))


# ---------------------------------------------------------------------- batching internals


def test_collate_plan_left_pads_and_stacks() -> None:
    torch = pytest.importorskip("torch")
    from vlmhb_wrapper.backends.hf.collate import CollatePlan

    def llava(n: int) -> dict[str, Any]:
        return {
            "input_ids": torch.arange(1, n + 1).unsqueeze(0),
            "attention_mask": torch.ones(1, n, dtype=torch.long),
            "pixel_values": torch.ones(1, 3, 4, 4),
        }

    a, b = llava(3), llava(5)
    plan = CollatePlan(a)
    assert plan.accepts(b)
    plan.add(b)
    out = plan.collate([a, b], pad_id=0)
    assert out["input_ids"].tolist() == [[0, 0, 1, 2, 3], [1, 2, 3, 4, 5]]
    assert out["attention_mask"].tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert out["pixel_values"].shape == (2, 3, 4, 4)
    text_only = {k: v for k, v in llava(2).items() if k != "pixel_values"}
    assert not plan.accepts(text_only)  # different inputs: another batch

    def idefics(n_tiles: int) -> dict[str, Any]:
        return {
            "input_ids": torch.ones(1, 2 + n_tiles, dtype=torch.long),
            "attention_mask": torch.ones(1, 2 + n_tiles, dtype=torch.long),
            "pixel_values": torch.ones(1, n_tiles, 3, 4, 4),
            "pixel_attention_mask": torch.ones(1, n_tiles, 4, 4, dtype=torch.long),
        }

    c, d = idefics(5), idefics(3)
    plan = CollatePlan(c)
    assert plan.accepts(d)
    plan.add(d)
    out = plan.collate([c, d], pad_id=7)
    assert out["pixel_values"].shape == (2, 5, 3, 4, 4)
    assert out["pixel_values"][1, 3:].abs().sum() == 0  # padding tiles are zero: ignored
    assert out["pixel_attention_mask"][1, 3:].sum() == 0
    assert out["input_ids"][1, :2].tolist() == [7, 7]


def _row(loop: asyncio.AbstractEventLoop, **kwargs: Any) -> Any:
    from vlmhb_wrapper.backends.hf.rows import Row

    request = GenerationRequest(
        messages=(PromptMessage("user", (TextSegment("x"),)),),
        max_new_tokens=kwargs.pop("max_new_tokens", 8),
        **kwargs,
    )
    return Row(request, loop)


def _batch_row(loop: asyncio.AbstractEventLoop, images: bool = False) -> Any:
    """A row with its model inputs, as the batcher sees it (with an image's pixels or not)."""
    import torch

    row = _row(loop)
    row.inputs = {"input_ids": torch.ones(1, 3, dtype=torch.long)}
    if images:
        row.inputs["pixel_values"] = torch.ones(1, 3, 2, 2)
    return row


def test_row_sampler_seeds_do_not_depend_on_batch_mates() -> None:
    torch = pytest.importorskip("torch")
    from vlmhb_wrapper.backends.hf.row_control import RowSampler

    loop = asyncio.new_event_loop()
    scores = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))

    def pick(rows: list[Any], position: int) -> int:
        sampler = RowSampler(rows, {0}, prompt_len=4)
        out = sampler(torch.zeros(len(rows), 4, dtype=torch.long), scores[: len(rows)].clone())
        return int(out[position].argmax())

    alone = pick([_row(loop, temperature=1.0, seed=5)], 0)
    assert pick([_row(loop, temperature=1.0, seed=5)], 0) == alone  # reproducible
    # The same row (same seed, same scores) in second place, next to a greedy row: same token.
    mates = RowSampler([_row(loop), _row(loop, temperature=1.0, seed=5)], {0}, prompt_len=4)
    out = mates(torch.zeros(2, 4, dtype=torch.long), scores[[1, 0]].clone())
    assert int(out[1].argmax()) == alone
    assert int(out[0].argmax()) == int(scores[1].argmax())  # the greedy row is untouched
    others = {pick([_row(loop, temperature=1.0, seed=s)], 0) for s in range(6, 16)}
    assert others != {alone}, "the seed changed nothing"
    # min_tokens: EOS (id 0) cannot win before the row has that many tokens.
    eos_first = torch.full((1, 50), -5.0)
    eos_first[0, 0] = 10.0
    sampler = RowSampler([_row(loop, min_tokens=2)], {0}, prompt_len=4)
    assert int(sampler(torch.zeros(1, 5, dtype=torch.long), eos_first.clone())[0].argmax()) != 0
    assert int(sampler(torch.zeros(1, 6, dtype=torch.long), eos_first.clone())[0].argmax()) == 0
    loop.close()


def test_row_stopper_per_row_end(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from vlmhb_wrapper.backends.hf import row_control

    sent: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        row_control, "dispatch", lambda events: sent.extend((k, v) for _, k, v, _ in events)
    )
    loop = asyncio.new_event_loop()
    rows = [
        _row(loop, max_new_tokens=5),  # hits EOS
        _row(loop, max_new_tokens=5, ignore_eos=True),  # EOS ignored
        _row(loop, max_new_tokens=1),  # length
        _row(loop, max_new_tokens=5),  # cancelled
    ]
    rows[3].cancelled = True
    stopper = row_control.RowStopper(rows, {9})
    done = stopper(torch.tensor([[1, 9], [1, 9], [1, 4], [1, 4]]), None)
    assert done.tolist() == [True, False, True, True]
    assert ("end", "stop") in sent and ("end", "length") in sent
    assert sum(1 for kind, _ in sent if kind == "end") == 2  # a cancelled row gets no end
    assert [r.count for r in rows] == [1, 1, 1, 1]
    sent.clear()
    done = stopper(torch.tensor([[1, 9, 3], [1, 9, 3], [1, 4, 3], [1, 4, 3]]), None)
    assert done.tolist() == [True, False, True, True]
    assert sent == [("tok", 3)]  # only the live row streams
    loop.close()


def test_batcher_groups_compatible_requests_in_order() -> None:
    pytest.importorskip("torch")
    from vlmhb_wrapper.backends.hf.batcher import Batcher

    loop = asyncio.new_event_loop()

    def row(images: bool) -> Any:
        return _batch_row(loop, images)

    batcher = Batcher(max_batch=2, wait_s=0.0)
    a, b, c, d = row(True), row(False), row(True), row(True)
    for r in (a, b, c, d):
        batcher.submit(r)
    first, _ = batcher.next_batch()
    assert first == [a, c]  # b cannot be stacked with a; the batch is full at 2
    second, _ = batcher.next_batch()
    assert second == [b]  # the oldest waiting request leads the next batch
    b.cancelled = True
    third, _ = batcher.next_batch()
    assert third == [d]
    assert batcher.close() == []
    assert batcher.next_batch() is None
    loop.close()


def test_batcher_waits_for_the_clients_of_the_last_batch_and_for_preprocessing() -> None:
    """A request that waited behind a running batch does not start the next batch alone: the
    wait restarts at the batch's end (the clients of that batch send their next requests at
    once), and goes on while accepted requests are still being preprocessed."""
    pytest.importorskip("torch")
    from vlmhb_wrapper.backends.hf.batcher import FILL_WAIT_FACTOR, Batcher

    loop = asyncio.new_event_loop()

    def row() -> Any:
        return _batch_row(loop)

    def later(seconds: float, action: Any) -> threading.Thread:
        thread = threading.Timer(seconds, action)
        thread.start()
        return thread

    wait_s = 0.2
    batcher = Batcher(max_batch=4, wait_s=wait_s)
    waited = row()
    batcher.submit(waited)
    time.sleep(wait_s * 1.5)  # it has waited longer than the window (behind a running batch)
    batcher.batch_done()
    returning = row()
    later(wait_s / 4, lambda: batcher.submit(returning))
    batch, _ = batcher.next_batch()
    assert batch == [waited, returning]

    # A request in preprocessing keeps the window open past wait_s, up to the fill limit.
    first, slow = row(), row()
    batcher.submit(first)
    batcher.expect(slow)
    started = time.perf_counter()
    later(wait_s * 2, lambda: batcher.submit(slow))
    batch, _ = batcher.next_batch()
    assert batch == [first, slow] and time.perf_counter() - started >= wait_s * 2

    # One that fails its preprocessing ends the extra wait.
    alone, failing = row(), row()
    batcher.submit(alone)
    batcher.expect(failing)
    started = time.perf_counter()
    later(wait_s / 4, lambda: batcher.abandon(failing))
    batch, _ = batcher.next_batch()
    elapsed = time.perf_counter() - started
    assert batch == [alone] and elapsed < wait_s * 2 < wait_s * FILL_WAIT_FACTOR
    batcher.close()
    loop.close()


def test_batcher_waits_again_when_every_row_of_a_filling_batch_is_cancelled() -> None:
    """The only row of a batch that is waiting to fill is cancelled (its client left, as a load
    test's cool-down requests do): the batcher waits for new rows, and the generation thread
    lives on (it used to die on an empty selection, and the server then hung)."""
    pytest.importorskip("torch")
    from vlmhb_wrapper.backends.hf.batcher import Batcher

    loop = asyncio.new_event_loop()

    def row() -> Any:
        return _batch_row(loop)

    batcher = Batcher(max_batch=4, wait_s=0.2)
    gone, fresh = row(), row()
    batcher.submit(gone)

    def cancel_then_submit() -> None:
        gone.cancelled = True  # as the event loop marks a row whose client disconnected
        time.sleep(0.3)  # past the batch's wait: the batcher finds only a cancelled row
        batcher.submit(fresh)

    threading.Timer(0.05, cancel_then_submit).start()
    batch, _ = batcher.next_batch()
    assert batch == [fresh] and len(batcher) == 0
    batcher.close()
    loop.close()


# ------------------------------------------------------------------------ telemetry, metrics


def test_memory_monitor_keeps_each_windows_peak() -> None:
    class Probe(MemoryProbe):
        value = 100.0

        def read(self) -> tuple[float, str] | None:
            return self.value, "process_rss"

    probe = Probe()
    monitor = MemoryMonitor(probe, interval_s=0.005)
    early = monitor.open()
    probe.value = 500.0
    time.sleep(0.1)  # the sampler sees the spike while `early` is open
    probe.value = 150.0
    late = monitor.open()
    assert monitor.close(late) == MemoryReading(150.0, "process_rss")
    assert monitor.close(early) == MemoryReading(500.0, "process_rss")
    monitor.shutdown()
    assert MemoryMonitor(None).close(MemoryMonitor(None).open()).source == "unavailable"


def test_performance_from_time_marks() -> None:
    request = GenerationRequest(messages=(), max_new_tokens=4, arrival=10.0, media_ms=1.5)
    result = GenerationResult(
        text="abcd",
        finish_reason="length",
        prompt_tokens=7,
        completion_tokens=4,
        gen_start=10.02,
        finished=10.1,
        first_token=10.04,
        last_token=10.07,
        queue_s=0.01,
        preprocess_s=0.005,
        memory=MemoryReading(123.4, "process_rss"),
        batch_size=3,
    )
    perf = performance_of(result, request, backend="hf")
    assert perf.latency_ms == pytest.approx(100.0)
    assert perf.ttft_ms == pytest.approx(40.0)
    assert perf.tpot_ms == pytest.approx(10.0)
    assert perf.generate_ms == pytest.approx(80.0)
    assert perf.tokens_per_s == pytest.approx(50.0)
    assert (perf.queue_ms, perf.preprocess_ms, perf.media_ms) == (10.0, 5.0, 1.5)
    assert perf.batch_size == 3 and perf.memory_source == "process_rss"


def test_prometheus_text_format() -> None:
    registry = Registry()
    counter = registry.add(Counter("x_total", "things", ("route",)))
    gauge = registry.add(Gauge("g", "level"))
    hist = registry.add(Histogram("h_seconds", "time", (0.1, 1.0)))
    counter.inc(2, 'a"b')
    gauge.set(1.5)
    hist.observe(0.05)
    hist.observe(0.5)
    text = registry.render()
    assert '# TYPE x_total counter\nx_total{route="a\\"b"} 2\n' in text
    assert "g 1.5\n" in text
    assert 'h_seconds_bucket{le="0.1"} 1\nh_seconds_bucket{le="1"} 2\n' in text
    assert 'h_seconds_bucket{le="+Inf"} 2\nh_seconds_sum 0.55\nh_seconds_count 2\n' in text


def test_chunk_writer_matches_the_openai_chunk_schema() -> None:
    import json

    perf = Performance(
        latency_ms=1, ttft_ms=1, tpot_ms=None, queue_ms=0, media_ms=0, preprocess_ms=0,
        generate_ms=1, prompt_tokens=2, completion_tokens=1, tokens_per_s=1,
        peak_memory_mb=1, memory_source="process_rss", device="cpu", backend="hf",
    )  # fmt: skip
    result = GenerationResult(
        text="é", finish_reason="stop", prompt_tokens=2, completion_tokens=1, gen_start=0,
        finished=1,
    )  # fmt: skip
    for include_usage in (True, False):
        writer = ChunkWriter("chatcmpl-1", 5, "m/é", include_usage)
        events = writer.role() + writer.content('a"\n é') + writer.finish(result, perf)
        chunks = [json.loads(e[6:]) for e in events.split("\n\n") if e]
        for chunk in chunks:
            parsed = ChatCompletionChunk.model_validate(chunk)
            assert parsed.id == "chatcmpl-1" and parsed.model == "m/é"
            assert ("usage" in chunk) is include_usage
        assert chunks[1]["choices"][0]["delta"] == {"content": 'a"\n é'}
        assert chunks[-1]["performance"]["backend"] == "hf"
        if include_usage:
            assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 3
            assert chunks[-2]["choices"][0] == {
                "index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop",
            }  # fmt: skip


# --------------------------------------------------------------------------- engines, proxy


def test_engine_commands() -> None:
    vllm = VLLMBackend(
        BackendConfig(
            model="Qwen/X",
            served_model_name="x",
            revision="abc",
            engine_args={
                "max_num_seqs": 16,
                "tensor_parallel_size": 2,
                "trust_remote_code": True,
                "chat_template": "/t.jinja",
                "extra_args": ["--enable-per-request-metrics"],
            },
            engine_launcher=("/opt/bin/vllm",),
        )
    )
    assert vllm.command(9000) == [
        "/opt/bin/vllm", "serve", "Qwen/X", "--served-model-name", "x",
        "--host", "127.0.0.1", "--port", "9000", "--revision", "abc",
        "--max-num-seqs", "16", "--tensor-parallel-size", "2", "--trust-remote-code",
        "--chat-template", "/t.jinja", "--enable-per-request-metrics",
    ]  # fmt: skip
    assert vllm.child_env()["VLLM_API_KEY"]
    sglang = SGLangBackend(BackendConfig(model="m", engine_args={"max_num_seqs": 4}))
    command = sglang.command(1)
    assert command[1:3] == ["-m", "sglang.launch_server"]
    assert "--max-running-requests" in command and "--api-key" in command
    with pytest.raises(ValueError, match="mem_fraction_static"):
        VLLMBackend(BackendConfig(model="m", engine_args={"mem_fraction_static": 0.5}))
    with pytest.raises(ValueError, match="mm_processor_kwargs"):
        SGLangBackend(BackendConfig(model="m", engine_args={"mm_processor_kwargs": {}}))
    with pytest.raises(ValueError, match="unknown engine args"):
        EngineOptions.parse({"gpu_mem": 0.5})
    with pytest.raises(ValueError, match="list of strings"):
        EngineOptions.parse({"extra_args": "--x"})


def test_secrets_do_not_reach_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_WRAPPER_KEY", "v1")
    monkeypatch.setenv("HF_HOME", "/cache")
    backend = VLLMBackend(BackendConfig(model="m", secret_env_vars=("MY_WRAPPER_KEY",)))
    env = backend.child_env()
    assert "MY_WRAPPER_KEY" not in env and env["HF_HOME"] == "/cache"


def test_upstream_request_body_and_error_relay() -> None:
    up = OpenAIUpstream("http://127.0.0.1:1/v1", model="remote")
    request = GenerationRequest(
        messages=(PromptMessage("user", (TextSegment("hi"),)),),
        max_new_tokens=5,
        response_format={"type": "json_object"},
        max_tokens_field="max_completion_tokens",
    )
    body = up.body(request)
    assert body["model"] == "remote" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert "ignore_eos" not in body and "seed" not in body  # OpenAI rejects unknown fields
    asyncio.run(up.aclose())

    err = _relay(400, b'{"error": {"message": "too long", "type": "x", "param": "messages"}}')
    assert (err.status_code, err.message, err.param) == (400, "too long", "messages")
    flat = _relay(400, b'{"object": "error", "message": "bad", "type": "BadRequest", "code": 400}')
    assert flat.status_code == 400 and flat.message == "bad"
    assert _relay(401, b"{}").status_code == 502  # the wrapper's credentials, not the client's
    assert _relay(500, b"oops").status_code == 502
    assert _relay(503, b"busy").status_code == 503


# -------------------------------------------------------------------------- backend plugins


class _EchoBackend(Backend):
    """A third-party backend: answers with the last user text, one word per delta."""

    name = "echo"

    async def _load(self) -> None:
        pass

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        start = time.perf_counter()
        text = request.messages[-1].parts[-1].text  # type: ignore[union-attr]
        words = text.split(" ")
        first = None
        for i, word in enumerate(words):
            first = first or time.perf_counter()
            yield TextDelta(word if i == 0 else " " + word)
        yield GenerationResult(
            text=text, finish_reason="stop", prompt_tokens=len(words),
            completion_tokens=len(words), gen_start=start, finished=time.perf_counter(),
            first_token=first, last_token=time.perf_counter(),
        )  # fmt: skip


def test_backends_come_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("hf", "vllm", "sglang", "openai"):
        assert resolve_backend(name).name == name
    plugin = EntryPoint("echo", f"{__name__}:_EchoBackend", backends_module.ENTRY_POINT_GROUP)
    real = backends_module.entry_points

    def fake(**kwargs: Any) -> Any:
        found = list(real(**kwargs))
        if (
            kwargs.get("group") == backends_module.ENTRY_POINT_GROUP
            and kwargs.get("name", "echo") == "echo"
        ):
            found.append(plugin)
        return found

    monkeypatch.setattr(backends_module, "entry_points", fake)
    assert "echo" in backends_module.available_backends()
    backend_cls = resolve_backend("echo")
    assert backend_cls is _EchoBackend
    with TestClient(create_app(backend_cls(BackendConfig(model="echo")))) as client:
        while client.get("/health").status_code != 200:
            pass
        body = {"model": "echo", "messages": [{"role": "user", "content": "раз два три"}]}
        answer = client.post("/v1/chat/completions", json=body).json()
        assert answer["choices"][0]["message"]["content"] == "раз два три"
        assert answer["performance"]["backend"] == "echo"
        assert answer["performance"]["memory_source"] == "unavailable"
        streamed = client.post("/v1/chat/completions", json={**body, "stream": True})
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert streamed.text.rstrip().endswith("data: [DONE]")
        assert streamed.text.count('"content":') == 4  # role chunk + three words
    monkeypatch.setattr(backends_module, "entry_points", lambda **_: [])
    with pytest.raises(TypeError, match="not a Backend subclass"):
        monkeypatch.setattr(
            backends_module,
            "entry_points",
            lambda **k: [EntryPoint("bad", "builtins:dict", backends_module.ENTRY_POINT_GROUP)],
        )
        resolve_backend("bad")
