"""The vllm / sglang / openai backends, up to the engine.

vLLM and SGLang cannot run here (no GPU), so a small *fake engine* (``tests/fake_engine.py``)
stands in for the ``vllm`` / ``python -m sglang.launch_server`` program through
``--engine-launcher``: it records the exact command line the wrapper built, then ``exec``s the
wrapper itself on the HF backend with the tiny model, on the port and under the name it was
given - a real OpenAI-compatible upstream. Everything else is real: the child process and its
log, the health wait, the streaming proxy, the internal API key, the engine dying mid-stream,
the startup failing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("torch")
psutil = pytest.importorskip("psutil")

from vlmhb_wrapper.backends.base import BackendConfig  # noqa: E402
from vlmhb_wrapper.backends.engine import SGLangBackend, VLLMBackend  # noqa: E402
from vlmhb_wrapper.schemas import ChatCompletionChunk  # noqa: E402

pytestmark = pytest.mark.slow

FAKE_ENGINE = Path(__file__).resolve().parents[1] / "fake_engine.py"

# The registry's qwen2.5-vl-3b-instruct engine args (vllm) and smolvlm-instruct's (sglang).
VLLM_ARGS = {
    "dtype": "bfloat16",
    "max_model_len": 8192,
    "gpu_memory_utilization": 0.9,
    "limit_mm_per_prompt": {"image": 1},
    "mm_processor_kwargs": {"max_pixels": 1003520},
}
SGLANG_ARGS = {
    "dtype": "bfloat16",
    "max_model_len": 8192,
    "mem_fraction_static": 0.85,
    "limit_mm_per_prompt": {"image": 1},
}


@pytest.fixture(scope="module")
def fake_engine() -> Path:
    return FAKE_ENGINE


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _start_engine_wrapper(
    start_wrapper: Any,
    fake_engine: Path,
    model_dir: Path,
    kind: str,
    engine_args: dict,
    record: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> Any:
    return start_wrapper(
        "--backend", kind, "--model", str(model_dir),
        "--engine-launcher", f"{sys.executable} {fake_engine} {kind}",
        "--engine-args-json", json.dumps(engine_args),
        "--api-key-env", "VLMHB_TEST_SECRET_KEY",
        "--log-level", "info", *extra,
        name=f"proxied-{kind}",
        env={
            "FAKE_ENGINE_RECORD": str(record),
            "VLMHB_TEST_SECRET_KEY": "outer-key-123",
            **(env or {}),
        },
        wait=wait,
        api_key="outer-key-123",
    )  # fmt: skip


@pytest.fixture(scope="module")
def vllm_server(
    start_wrapper: Any, fake_engine: Path, tiny_model_dirs: dict[str, Path], tmp_path_factory: Any
) -> Any:
    record = tmp_path_factory.mktemp("rec") / "vllm.jsonl"
    bodies = record.with_name("vllm-bodies.jsonl")  # what the engine received
    media = tmp_path_factory.mktemp("proxy-media")
    server = _start_engine_wrapper(
        start_wrapper, fake_engine, tiny_model_dirs["llava"], "vllm", VLLM_ARGS, record,
        "--allowed-media-root", str(media), "--max-image-pixels", "1000000",
        env={"FAKE_ENGINE_BODIES": str(bodies)},
    )  # fmt: skip
    server.record, server.bodies, server.media = record, bodies, media
    return server


def _text_messages(text: str = "Привет") -> list[dict]:
    return [{"role": "user", "content": text}]


def test_vllm_command_built_from_the_model_entry_is_what_runs(
    vllm_server: Any, tiny_model_dirs: dict[str, Path]
) -> None:
    (record,) = _records(vllm_server.record)
    port = int(record["argv"][record["argv"].index("--port") + 1])
    expected = VLLMBackend(
        BackendConfig(
            model=str(tiny_model_dirs["llava"]),
            served_model_name=vllm_server.name,
            engine_args=VLLM_ARGS,
        )
    ).engine_arguments(port)
    assert record["argv"] == expected
    assert record["argv"][:2] == ["serve", str(tiny_model_dirs["llava"])]
    joined = " ".join(record["argv"])
    for flag in (
        "--served-model-name proxied-vllm --host 127.0.0.1",
        "--dtype bfloat16",
        "--max-model-len 8192",
        "--gpu-memory-utilization 0.9",
        '--limit-mm-per-prompt {"image": 1}',
        '--mm-processor-kwargs {"max_pixels": 1003520}',
    ):
        assert flag in joined
    # The engine gets a private key through VLLM_API_KEY and none of the wrapper's secrets.
    assert record["vllm_api_key"] and record["vllm_api_key"] != "outer-key-123"
    assert record["leaked"] == []
    assert record["vllm_api_key"] not in vllm_server.log(tail=10**7)
    # The engine's port is private: without the internal key it refuses to serve.
    direct = httpx.get(f"http://127.0.0.1:{port}/v1/models")
    assert direct.status_code == 401


def test_proxy_non_streaming_and_streaming(vllm_server: Any) -> None:
    with vllm_server.client() as client:
        full = client.chat.completions.create(
            model=vllm_server.name,
            messages=_text_messages(),
            max_tokens=10,
            extra_body={"ignore_eos": True},
        )
        stream = client.chat.completions.create(
            model=vllm_server.name,
            messages=_text_messages(),
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        chunks = [c.model_dump(exclude_unset=True) for c in stream]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == full.choices[0].message.content
    assert full.usage.completion_tokens == 10 and full.choices[0].finish_reason == "length"
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 10
    for perf, usage in ((full.model_extra["performance"], full.usage.model_dump()),):
        upstream = perf["upstream"]["performance"]  # the engine's own view of the request
        assert perf["backend"] == "vllm" and upstream["backend"] == "hf"
        assert perf["prompt_tokens"] == upstream["prompt_tokens"] == usage["prompt_tokens"]
        assert perf["completion_tokens"] == upstream["completion_tokens"] == 10
        # The wrapper's clock starts before the engine's and sees tokens after it does.
        assert upstream["ttft_ms"] <= perf["ttft_ms"] <= perf["latency_ms"]
        assert upstream["latency_ms"] <= perf["latency_ms"]
        assert perf["memory_source"] == "process_rss" and perf["peak_memory_mb"] > 0
    perf = last["performance"]
    assert perf["ttft_ms"] <= perf["latency_ms"]
    # TPOT is measured from the tokens' arrival at the wrapper: on a loaded machine the upstream's
    # chunks may arrive in one read (TPOT 0), never after the reply's end.
    assert 0 <= perf["tpot_ms"] * 9 <= perf["latency_ms"] - perf["ttft_ms"] + 0.01


def test_vllm_gets_mm_processor_kwargs_per_request(vllm_server: Any) -> None:
    """vLLM takes the multimodal processor's arguments per request (its chat request's
    ``mm_processor_kwargs``): the wrapper forwards them as the client sent them, streaming or
    not, and sends none when the client sent none."""
    kwargs = {"max_pixels": 401408, "min_pixels": 3136}
    with vllm_server.client() as client:
        full = client.chat.completions.create(
            model=vllm_server.name, messages=_text_messages("С аргументами"), max_tokens=2,
            extra_body={"mm_processor_kwargs": kwargs},
        )  # fmt: skip
        stream = client.chat.completions.create(
            model=vllm_server.name, messages=_text_messages("Поток"), max_tokens=2,
            stream=True, extra_body={"mm_processor_kwargs": {"max_pixels": 1003520}},
        )  # fmt: skip
        chunks = list(stream)
        plain = client.chat.completions.create(
            model=vllm_server.name, messages=_text_messages("Без"), max_tokens=2
        )
    assert full.choices[0].finish_reason and plain.choices[0].finish_reason
    assert chunks[-1].model_extra["performance"]["backend"] == "vllm"
    received = {body["messages"][-1]["content"]: body for body in _records(vllm_server.bodies)}
    assert received["С аргументами"]["mm_processor_kwargs"] == kwargs
    assert received["Поток"]["mm_processor_kwargs"] == {"max_pixels": 1003520}
    assert "mm_processor_kwargs" not in received["Без"]


def test_proxy_async_concurrency(vllm_server: Any) -> None:
    questions = [f"Вопрос {'да ' * i}" for i in range(6)]

    async def run() -> list:
        async with vllm_server.async_client() as client:
            return await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model=vllm_server.name, messages=_text_messages(q), max_tokens=3
                    )
                    for q in questions
                )
            )

    responses = asyncio.run(run())
    prompt_tokens = [r.usage.prompt_tokens for r in responses]
    assert prompt_tokens == sorted(prompt_tokens) and len(set(prompt_tokens)) == len(questions)


def _posts_received(server: Any) -> int:
    return len(_records(server.bodies)) if server.bodies.exists() else 0


def test_proxy_checks_and_inlines_images(vllm_server: Any) -> None:
    from PIL import Image

    image = vllm_server.media / "doc.png"
    Image.new("RGB", (64, 48), "white").save(image)
    bomb_header = vllm_server.media / "bomb.png"
    Image.new("RGB", (16, 16)).save(bomb_header)
    data = bytearray(bomb_header.read_bytes())
    data[16:24] = (40000).to_bytes(4, "big") + (40000).to_bytes(4, "big")
    import zlib

    data[29:33] = (zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF).to_bytes(4, "big")
    bomb_header.write_bytes(bytes(data))

    def messages(path: Path) -> list[dict]:
        return [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": path.as_uri()}},
                    {"type": "text", "text": "Что это?"},
                ],
            }
        ]

    # The engine's own record of each POST, written before it answers (its relayed access log
    # lags on a loaded machine, and also holds the watchdog's health checks).
    before = _posts_received(vllm_server)
    with vllm_server.client() as client:
        # file:// is read by the wrapper and sent as a data: URL (the engine has no roots).
        resp = client.chat.completions.create(
            model=vllm_server.name, messages=messages(image), max_tokens=2
        )
        assert resp.usage.prompt_tokens > 20  # the image tokens were counted by the engine
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(
                model=vllm_server.name, messages=messages(bomb_header), max_tokens=2
            )
        assert err.value.status_code == 413
        # limit_mm_per_prompt {"image": 1} from the engine args is enforced by the wrapper.
        two = messages(image)
        two[0]["content"].insert(0, two[0]["content"][0])
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model=vllm_server.name, messages=two, max_tokens=2)
        assert err.value.body["code"] == "too_many_images"
    after = _posts_received(vllm_server)
    assert after - before == 1, "only the valid request may reach the engine"


def test_proxy_relays_upstream_errors(vllm_server: Any) -> None:
    with vllm_server.client() as client:
        with pytest.raises(openai.BadRequestError) as err:  # the engine's context check
            client.chat.completions.create(
                model=vllm_server.name, messages=_text_messages(), max_tokens=3000
            )
        assert err.value.body["code"] == "context_length_exceeded"
        with pytest.raises(openai.BadRequestError) as err:  # streaming: still a real 400
            client.chat.completions.create(
                model=vllm_server.name, messages=_text_messages(), max_tokens=3000, stream=True
            )
        assert err.value.body["code"] == "context_length_exceeded"
        # response_format goes through to the engine (vLLM/SGLang do structured output; the
        # stand-in engine, an hf wrapper, says it cannot - which proves it was forwarded).
        schema = {"name": "answer", "schema": {"type": "object"}}
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model=vllm_server.name,
                messages=_text_messages(),
                max_tokens=3,
                response_format={"type": "json_schema", "json_schema": schema},
            )
        assert err.value.body["code"] == "unsupported_response_format"
        assert "hf backend" in err.value.body["message"]


def test_sglang_command_and_proxy(
    start_wrapper: Any, fake_engine: Path, tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    record = tmp_path / "sglang.jsonl"
    server = _start_engine_wrapper(
        start_wrapper, fake_engine, tiny_model_dirs["idefics3"], "sglang", SGLANG_ARGS, record
    )
    (rec,) = _records(record)
    port = int(rec["argv"][rec["argv"].index("--port") + 1])
    key = rec["argv"][rec["argv"].index("--api-key") + 1]
    backend = SGLangBackend(
        BackendConfig(
            model=str(tiny_model_dirs["idefics3"]),
            served_model_name=server.name,
            engine_args=SGLANG_ARGS,
        )
    )
    backend._internal_key = key
    assert rec["argv"] == backend.engine_arguments(port)
    joined = " ".join(rec["argv"])
    for flag in (
        f"--model-path {tiny_model_dirs['idefics3']} --served-model-name proxied-sglang",
        "--context-length 8192",
        "--mem-fraction-static 0.85",
        "--enable-multimodal",
        '--limit-mm-data-per-request {"image": 1}',
    ):
        assert flag in joined
    log = server.log(tail=10**7)
    assert key not in log and "--api-key ***" in log  # the command line is logged, redacted
    with server.client() as client:
        chunks = list(
            client.chat.completions.create(
                model=server.name,
                messages=_text_messages(),
                max_tokens=4,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"ignore_eos": True},
            )
        )
    assert chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].model_extra["performance"]["backend"] == "sglang"
    _assert_mm_processor_kwargs_refused(server, "sglang")


def _assert_mm_processor_kwargs_refused(server: Any, backend: str) -> None:
    """A backend that cannot take processor arguments per request refuses them (400) instead
    of answering as if they had been applied."""
    with server.client() as client, pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=server.name, messages=_text_messages(), max_tokens=2,
            extra_body={"mm_processor_kwargs": {"max_pixels": 401408}},
        )  # fmt: skip
    assert err.value.body["param"] == "mm_processor_kwargs"
    assert err.value.body["code"] == "unsupported"
    assert f"by the {backend} backend" in err.value.body["message"]


def _engine_pid(record: Path) -> int:
    return _records(record)[-1]["pid"]


def _wait_engine_in_flight(record: Path, count: int, timeout_s: float = 30) -> None:
    """Until the engine itself serves ``count`` requests at once (its own /metrics): a request
    that has not reached it when it dies meets a wrapper that knows it is gone."""
    entry = _records(record)[-1]
    argv = entry["argv"]
    url = f"http://{argv[argv.index('--host') + 1]}:{argv[argv.index('--port') + 1]}/metrics"
    key = entry.get("vllm_api_key")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = httpx.get(url, headers=headers).text
        if re.search(rf"^vlmhb_requests_in_flight {count}(\.0)?$", text, re.MULTILINE):
            return
        time.sleep(0.05)
    raise AssertionError(f"the engine never served {count} requests at once:\n{text[-2000:]}")


def _fail_mid_stream(stream: Any, act: Callable[[], None]) -> tuple[Any, float]:
    """Read ``stream`` to its third content chunk, run ``act`` and read on: the stream must end
    with an error. Returns the error and the seconds from ``act`` to it."""
    received, acted = 0, 0.0
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
            if received == 3 and not acted:
                act()
                acted = time.monotonic()
    return err, time.monotonic() - acted


def test_engine_death_mid_stream_is_503_with_its_last_log_lines(
    start_wrapper: Any, fake_engine: Path, tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    record = tmp_path / "dying.jsonl"
    server = _start_engine_wrapper(
        start_wrapper, fake_engine, tiny_model_dirs["llava"], "vllm", {}, record
    )
    pid = _engine_pid(record)
    assert psutil.Process(pid).ppid() == server.process.pid
    long = {"max_tokens": 1900, "extra_body": {"ignore_eos": True}}
    outcome: dict[str, Any] = {}

    def non_streaming() -> None:
        with server.client() as client:
            try:
                client.chat.completions.create(
                    model=server.name, messages=_text_messages("Итого?"), **long
                )
            except openai.APIStatusError as exc:
                outcome["status"], outcome["body"] = exc.status_code, exc.body

    other = threading.Thread(target=non_streaming)
    with server.client() as client:
        stream = client.chat.completions.create(
            model=server.name, messages=_text_messages(), stream=True, **long
        )

        def kill_during_two_requests() -> None:
            other.start()
            _wait_engine_in_flight(record, 2)  # the second request is in the engine too
            os.kill(pid, signal.SIGKILL)

        err, elapsed = _fail_mid_stream(stream, kill_during_two_requests)
    other.join(timeout=30)
    assert elapsed < 10, "the stream hung after the engine died"
    body = err.value.body
    assert body["code"] == "engine_died" and body["type"] == "service_unavailable"
    assert "killed by signal 9" in body["message"]
    assert "fake vllm engine starting" in body["message"]  # the engine's own log lines
    assert outcome.get("status") == 503, outcome
    assert outcome["body"]["code"] == "engine_died"
    health = httpx.get(f"{server.base_url}/health")
    assert health.status_code == 503 and health.json()["status"] == "failed"
    assert "fake vllm engine starting" in health.json()["detail"]
    with server.client() as client, pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model=server.name, messages=_text_messages())
    assert err.value.status_code == 503 and "killed by signal 9" in err.value.body["message"]
    assert server.process.poll() is None  # the wrapper itself lives on, and says why


def test_a_hung_engine_is_found_by_the_health_watchdog_and_stopped(
    start_wrapper: Any, fake_engine: Path, tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """An engine that is alive but silent (SIGSTOP) fails the watchdog's /health polls: the
    stream in flight ends with a 503 naming the hang within seconds (the upstream timeout is
    600 s), /health says failed, and the engine process is gone."""
    record = tmp_path / "hung.jsonl"
    server = _start_engine_wrapper(
        start_wrapper, fake_engine, tiny_model_dirs["llava"], "vllm", {}, record,
        "--engine-health-interval", "0.5", "--engine-health-failures", "2",
    )  # fmt: skip
    pid = _engine_pid(record)
    time.sleep(2.0)  # four polls of an idle, healthy engine: no false alarm
    with server.client() as client:
        answer = client.chat.completions.create(
            model=server.name, messages=_text_messages(), max_tokens=3
        )
        assert answer.usage.completion_tokens == 3
        stream = client.chat.completions.create(
            model=server.name, messages=_text_messages(), stream=True, max_tokens=1900,
            extra_body={"ignore_eos": True},
        )  # fmt: skip
        err, elapsed = _fail_mid_stream(stream, lambda: os.kill(pid, signal.SIGSTOP))
    assert elapsed < 15, "the stream waited for the upstream timeout"
    body = err.value.body
    assert body["code"] == "engine_hung" and body["type"] == "service_unavailable"
    assert "stopped answering" in body["message"]
    assert "fake vllm engine starting" in body["message"]  # the engine's own log lines
    health = httpx.get(f"{server.base_url}/health")
    assert health.status_code == 503 and "stopped answering" in health.json()["detail"]
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie":
        assert time.monotonic() < deadline, "the hung engine was not stopped"
        time.sleep(0.1)
    assert server.process.poll() is None


def test_engine_startup_failure_and_timeout_are_reported(
    start_wrapper: Any, fake_engine: Path, tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    failing = _start_engine_wrapper(
        start_wrapper, fake_engine, tiny_model_dirs["llava"], "vllm", {}, tmp_path / "f.jsonl",
        env={"FAKE_ENGINE_FAIL": "1"}, wait=False,
    )  # fmt: skip
    hanging = _start_engine_wrapper(
        start_wrapper, fake_engine, tiny_model_dirs["llava"], "sglang", {}, tmp_path / "h.jsonl",
        "--engine-startup-timeout", "3",
        env={"FAKE_ENGINE_HANG": "1"}, wait=False,
    )  # fmt: skip
    details = {}
    deadline = time.monotonic() + 60
    while len(details) < 2 and time.monotonic() < deadline:
        for name, server in (("failing", failing), ("hanging", hanging)):
            try:
                response = httpx.get(f"{server.base_url}/health", timeout=2)
            except httpx.HTTPError:
                continue
            assert response.status_code == 503
            if response.json()["status"] == "failed":
                details[name] = response.json()["detail"]
        time.sleep(0.2)
    assert set(details) == {"failing", "hanging"}, details
    assert "exited with code 3" in details["failing"]
    assert "CUDA out of memory (simulated)" in details["failing"]
    assert "not healthy after 3 s" in details["hanging"]
    assert "loading forever" in details["hanging"]
    hung_pid = _engine_pid(tmp_path / "h.jsonl")
    deadline = time.monotonic() + 30
    while psutil.pid_exists(hung_pid) and psutil.Process(hung_pid).status() != "zombie":
        assert time.monotonic() < deadline, "the hung engine was not stopped"
        time.sleep(0.1)
    with failing.client() as client, pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model=failing.name, messages=_text_messages())
    assert err.value.status_code == 503


def test_openai_backend_proxies_an_external_endpoint(
    start_wrapper: Any, tiny_model_dirs: dict[str, Path]
) -> None:
    upstream = start_wrapper(
        "--backend", "hf", "--model", str(tiny_model_dirs["llava"]), "--threads", "1",
        "--api-key-env", "UPSTREAM_KEY",
        name="remote-model", env={"UPSTREAM_KEY": "up-secret-1"}, api_key="up-secret-1",
    )  # fmt: skip
    proxy = start_wrapper(
        "--backend", "openai", "--model", "remote-model",
        "--upstream-base-url", f"{upstream.base_url}/v1",
        "--upstream-api-key-env", "VLMHB_TEST_SECRET_UP",
        name="via-proxy", env={"VLMHB_TEST_SECRET_UP": "up-secret-1"},
    )  # fmt: skip
    with upstream.client() as client:
        direct = client.chat.completions.create(
            model="remote-model", messages=_text_messages(), max_tokens=6
        )
    with proxy.client() as client:
        via = client.chat.completions.create(
            model="via-proxy", messages=_text_messages(), max_tokens=6
        )
    assert via.choices[0].message.content == direct.choices[0].message.content
    assert via.usage.model_dump() == direct.usage.model_dump()
    perf = via.model_extra["performance"]
    assert perf["backend"] == "openai" and perf["memory_source"] == "unavailable"
    assert perf["peak_memory_mb"] is None and perf["ttft_ms"] <= perf["latency_ms"]
    assert "up-secret-1" not in proxy.log(tail=10**7)
    _assert_mm_processor_kwargs_refused(proxy, "openai")
    # A wrong upstream key is found at startup: failed health, 503 answers.
    bad = start_wrapper(
        "--backend", "openai", "--model", "remote-model",
        "--upstream-base-url", f"{upstream.base_url}/v1",
        "--upstream-api-key-env", "VLMHB_TEST_SECRET_UP",
        name="bad-proxy", env={"VLMHB_TEST_SECRET_UP": "wrong"}, wait=False,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            health = httpx.get(f"{bad.base_url}/health", timeout=2)
            if health.json()["status"] == "failed":
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "refused the API key" in health.json()["detail"]


def test_proxy_in_front_of_the_benchmarks_engine_standin(
    start_wrapper: Any, tmp_path: Path
) -> None:
    """``benchmarks/engine_standin.py`` (the GPU engine stand-in of ``wrapper_overhead.py``)
    speaks vLLM's shapes: a role chunk first, one chunk per token, a finish chunk, a usage
    chunk. The proxy in front of it answers both ways with the stand-in's tokens and usage."""
    from vlmhyperbench.inference.launcher import running_wrapper

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "engine_standin.py"
    command = [sys.executable, str(script), "--step-ms", "2", "--prefill-ms", "1"]
    with running_wrapper(lambda port: [*command, "--port", str(port)], tmp_path / "e.log") as up:
        proxy = start_wrapper(
            "--backend", "openai", "--model", "m", "--upstream-base-url", up,
            name="standin",
        )  # fmt: skip
        ignore_eos = {"ignore_eos": True}
        with proxy.client() as client:
            answer = client.chat.completions.create(
                model="standin", messages=_text_messages("a b c"), max_tokens=5,
                extra_body=ignore_eos,
            )  # fmt: skip
            stream = client.chat.completions.create(
                model="standin", messages=_text_messages(), max_tokens=8, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            chunks = list(stream)
    assert answer.choices[0].message.content == "t0 t1 t2 t3 t4"
    assert answer.choices[0].finish_reason == "length"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 5)
    perf = answer.model_extra["performance"]
    assert 0 < perf["ttft_ms"] <= perf["latency_ms"] and perf["completion_tokens"] == 5
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "t0 t1 t2 t3 t4 t5"  # without ignore_eos the stand-in stops at 3/4
    assert chunks[-1].usage.completion_tokens == 6 and not chunks[-1].choices
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "stop"
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())
