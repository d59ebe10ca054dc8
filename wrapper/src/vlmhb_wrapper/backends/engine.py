"""vLLM and SGLang: the wrapper launches the engine's own OpenAI server as a child process.

Lifecycle:

1. the command is built from the model entry's engine args (:meth:`EngineBackend.command`);
2. the child starts in its own process group, with its output piped into the wrapper's log
   (the last lines are kept), with ``PR_SET_PDEATHSIG`` so it dies with the wrapper, and with
   the wrapper's secrets removed from its environment; a random internal API key keeps other
   local users from bypassing the wrapper's own key;
3. ``/health`` says ``loading`` until the child answers its ``/health`` and lists the served
   model on ``/v1/models``; if the child exits first, ``failed`` with its last log lines;
4. every request is proxied *streaming* (:class:`~vlmhb_wrapper.backends.proxy.OpenAIUpstream`)
   so TTFT is measured by the wrapper; peak memory is sampled from the child's process tree
   (NVML when there is a GPU, RSS otherwise);
5. if the child dies, a watcher thread marks the backend failed at once: ``/health`` and new
   requests answer 503 with the child's last log lines, and requests in flight end with the
   same 503 (an error event when streaming) - nothing waits for a timeout;
6. if the child stays alive but stops answering (a deadlock, a stopped process), a watchdog
   that polls its ``/health`` every ``engine_health_interval_s`` notices after
   ``engine_health_failures`` failed polls in a row, marks the backend failed the same way and
   stops the child, which ends the requests in flight with that 503 - not after the 600 s
   upstream timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import httpx

from vlmhb_wrapper.backends.base import (
    Backend,
    BackendConfig,
    GenerationRequest,
    GenerationResult,
    StreamEvent,
)
from vlmhb_wrapper.backends.proxy import OpenAIUpstream
from vlmhb_wrapper.errors import APIError, ServiceUnavailableError
from vlmhb_wrapper.security import register_secret
from vlmhb_wrapper.telemetry import MemoryMonitor, NvmlProbe, ProcessTree, RssProbe

logger = logging.getLogger(__name__)
engine_logger = logging.getLogger("vlmhb_wrapper.engine")

__all__ = ["EngineBackend", "EngineOptions", "SGLangBackend", "VLLMBackend"]


@dataclass(frozen=True)
class EngineOptions:
    """The model registry's ``engine_args`` as the wrapper receives them (``--engine-args-json``).

    Unknown keys are an error: a typo must not silently fall back to an engine default.
    """

    dtype: str = "auto"
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    mem_fraction_static: float | None = None
    limit_mm_per_prompt: Mapping[str, int] | None = None
    mm_processor_kwargs: Mapping[str, Any] | None = None
    max_num_seqs: int | None = None
    tensor_parallel_size: int | None = None
    trust_remote_code: bool = False
    chat_template: str | None = None
    torch_threads: int | None = None  # hf only; accepted and ignored by the engines
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> EngineOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown engine args {unknown}; known: {sorted(known)}")
        values = dict(raw)
        if "extra_args" in values:
            extra = values["extra_args"]
            if isinstance(extra, str) or not all(isinstance(a, str) for a in extra):
                raise ValueError("engine arg extra_args must be a list of strings")
            values["extra_args"] = tuple(extra)
        return cls(**values)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _json_arg(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class EngineBackend(Backend):
    """Common child-process + proxy logic; subclasses build the engine's command line."""

    supports_structured_output = True
    supports_penalties = True
    needs_decoded_images = False
    #: Environment variable through which the engine reads its API key, if it has one.
    api_key_env: ClassVar[str | None] = None

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.options = EngineOptions.parse(config.engine_args)
        self.validate_options(self.options)
        self._internal_key = secrets.token_urlsafe(24)
        register_secret(self._internal_key)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: deque[str] = deque(maxlen=max(200, config.engine_log_lines))
        self._reader: threading.Thread | None = None
        self._closing = False
        self._upstream: OpenAIUpstream | None = None
        self._monitor = MemoryMonitor(None)
        self._device = "cpu"
        self._watchdog: asyncio.Task[None] | None = None
        self._hung: str | None = None  # why the watchdog stopped the engine
        self.port: int | None = None

    # ------------------------------------------------------------------------- the command

    def validate_options(self, options: EngineOptions) -> None:
        """Raise ValueError for options the engine does not have (instead of ignoring them)."""

    def default_launcher(self) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def engine_arguments(self, port: int) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def command(self, port: int) -> list[str]:
        launcher = list(self.config.engine_launcher or self.default_launcher())
        return launcher + self.engine_arguments(port)

    def child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in self.config.secret_env_vars}
        env["PYTHONUNBUFFERED"] = "1"
        if self.api_key_env:
            env[self.api_key_env] = self._internal_key
        return env

    # ---------------------------------------------------------------------------- lifecycle

    @property
    def device(self) -> str:
        return self._device

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def log_tail(self, lines: int | None = None) -> str:
        n = lines or self.config.engine_log_lines
        text = "\n".join(list(self._log)[-n:]) or "(no output)"
        return text.replace(self._internal_key, "***")

    async def _load(self) -> None:
        start = time.perf_counter()
        port = self.config.engine_port or free_port()
        self.port = port
        command = self.command(port)
        shown = " ".join(shlex.quote(a) for a in command).replace(self._internal_key, "***")
        logger.info("starting the %s engine: %s", self.name, shown)
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.child_env(),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        process = self._process
        self._reader = threading.Thread(
            target=self._read_output, args=(process,), name=f"vlmhb-{self.name}-log", daemon=True
        )
        self._reader.start()
        threading.Thread(
            target=self._watch, args=(process,), name=f"vlmhb-{self.name}-wait", daemon=True
        ).start()
        tree = ProcessTree(process.pid)
        probe = NvmlProbe.create(tree)
        self._device = "cuda" if probe is not None else "cpu"
        self._monitor = MemoryMonitor(probe or RssProbe(tree))
        base = f"http://127.0.0.1:{port}"
        self._upstream = OpenAIUpstream(
            f"{base}/v1",
            model=self.model_name,
            api_key=self._internal_key,
            timeout_s=self.config.upstream_timeout_s,
            on_failure=self._failure,
        )
        try:
            await self._wait_ready(base)
        except BaseException:
            await self._terminate()
            raise
        # The same wording as the in-process backends: "loaded <model> (...) in <s>s".
        logger.info(
            "loaded %s (%s engine, %s, pid %d, port %d) in %.2fs",
            self.config.model_name,
            self.name,
            self.config.model,
            self.pid,
            port,
            time.perf_counter() - start,
        )
        if self.config.engine_health_interval_s > 0:
            self._watchdog = asyncio.create_task(
                self._watch_health(base), name=f"vlmhb-{self.name}-health"
            )

    def _engine_client(self, timeout_s: float) -> httpx.AsyncClient:
        """A client for the engine's own endpoints (health, models), with its internal key."""
        headers = {"Authorization": f"Bearer {self._internal_key}"}
        return httpx.AsyncClient(timeout=timeout_s, trust_env=False, headers=headers)

    async def _wait_ready(self, base: str) -> None:
        assert self._process is not None
        timeout = self.config.engine_startup_timeout_s
        deadline = time.monotonic() + timeout
        async with self._engine_client(timeout_s=5.0) as client:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(self._death_message())
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{base}/health")
                    if response.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the {self.name} engine was not healthy after {timeout:.0f} s; "
                        f"last log lines:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.25)
            response = await client.get(f"{base}/v1/models")
        served = [m.get("id") for m in response.json().get("data", [])]
        if response.status_code != 200 or self.model_name not in served:
            raise RuntimeError(
                f"the {self.name} engine serves {served} (HTTP {response.status_code}), "
                f"not {self.model_name!r}"
            )

    async def _watch_health(self, base: str) -> None:
        """Poll the running engine's ``/health``; stop and report it when it hangs."""
        interval = self.config.engine_health_interval_s
        limit = self.config.engine_health_failures
        failures, reason = 0, ""
        async with self._engine_client(timeout_s=interval) as client:
            while True:
                await asyncio.sleep(interval)
                if self._closing or not self.ready:
                    return
                try:
                    response = await client.get(f"{base}/health")
                    reason = f"HTTP {response.status_code}"
                    healthy = response.status_code == 200
                except httpx.HTTPError as exc:
                    reason, healthy = f"{type(exc).__name__} after {interval:g} s", False
                failures = 0 if healthy else failures + 1
                if failures < limit or self._closing or not self.ready:
                    continue
                self._hung = (
                    f"the {self.name} engine (pid {self.pid}) stopped answering: {failures} "
                    f"health checks in a row failed (one every {interval:g} s; last: {reason}), "
                    f"so the wrapper stopped it; last log lines:\n{self.log_tail()}"
                )
                logger.error("%s", self._hung)
                self.mark_failed(self._hung)
                await self._terminate(grace_s=2.0)
                return

    def _read_output(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            self._log.append(line)
            engine_logger.info("[%s] %s", self.name, line)
        process.stdout.close()

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        process.wait()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        if self._closing:
            return
        message = self._death_message()
        logger.error("%s", message)
        self.mark_failed(message)

    def _death_message(self) -> str:
        assert self._process is not None
        code = self._process.returncode
        if code is not None and code < 0:
            how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        return (
            f"the {self.name} engine (pid {self._process.pid}) {how}; "
            f"last log lines:\n{self.log_tail()}"
        )

    async def _failure(self, reason: str) -> APIError:
        """What a broken upstream connection means: the engine died, or did not answer."""
        if self._hung:
            return ServiceUnavailableError(self._hung, code="engine_hung")
        process = self._process
        for _ in range(40):  # the socket may close a moment before the exit status is ready
            if process is None or process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        if process is not None and process.poll() is not None:
            if self._reader is not None:
                await asyncio.to_thread(self._reader.join, 2.0)
            message = self._death_message()
            if not self._closing:
                self.mark_failed(message)
            return ServiceUnavailableError(message, code="engine_died")
        return ServiceUnavailableError(
            f"the {self.name} engine did not answer ({reason}); last log lines:\n{self.log_tail()}",
            code="upstream_unavailable",
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        if not self.ready or self._upstream is None:
            raise ServiceUnavailableError(
                self.error or f"the {self.name} engine is {self.state.value}",
                code="engine_unavailable",
            )
        window = self._monitor.open()
        closed = False
        try:
            async for event in self._upstream.stream(request):
                if isinstance(event, GenerationResult):
                    event.memory = self._monitor.close(window)
                    closed = True
                    event.device = self._device
                yield event
        finally:
            if not closed:
                self._monitor.close(window)

    async def _terminate(self, grace_s: float = 20.0) -> None:
        self._closing = True
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                await asyncio.to_thread(process.wait)
        if process is not None:
            # Grandchildren that outlived the engine (same process group) go too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    async def close(self) -> None:
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        await self._terminate()
        if self._upstream is not None:
            await self._upstream.aclose()
        self._monitor.shutdown()


def _resolve_executable(name: str) -> str | None:
    """``name`` next to the running interpreter (an unactivated venv), else on ``PATH``."""
    here = os.path.dirname(sys.executable)
    return shutil.which(name, path=here) or shutil.which(name)


class VLLMBackend(EngineBackend):
    """``vllm serve MODEL ...`` (vLLM reads its API key from ``VLLM_API_KEY``)."""

    name = "vllm"
    api_key_env = "VLLM_API_KEY"
    #: vLLM's chat request has ``mm_processor_kwargs``, merged key by key over the engine's
    #: ``--mm-processor-kwargs`` for that request: variants differing only there share a server.
    supports_mm_processor_kwargs = True

    def validate_options(self, options: EngineOptions) -> None:
        if options.mem_fraction_static is not None:
            raise ValueError(
                "vllm has no mem_fraction_static (an SGLang option); use gpu_memory_utilization"
            )

    def default_launcher(self) -> list[str]:
        exe = _resolve_executable("vllm")
        return [exe] if exe else [sys.executable, "-m", "vllm.entrypoints.cli.main"]

    def engine_arguments(self, port: int) -> list[str]:
        o, cfg = self.options, self.config
        args = ["serve", cfg.model, "--served-model-name", self.model_name]
        args += ["--host", "127.0.0.1", "--port", str(port)]
        if cfg.revision:
            args += ["--revision", cfg.revision]
        if o.dtype and o.dtype != "auto":
            args += ["--dtype", o.dtype]
        if o.max_model_len is not None:
            args += ["--max-model-len", str(o.max_model_len)]
        if o.gpu_memory_utilization is not None:
            args += ["--gpu-memory-utilization", str(o.gpu_memory_utilization)]
        if o.limit_mm_per_prompt is not None:
            args += ["--limit-mm-per-prompt", _json_arg(dict(o.limit_mm_per_prompt))]
        if o.mm_processor_kwargs is not None:
            args += ["--mm-processor-kwargs", _json_arg(dict(o.mm_processor_kwargs))]
        if o.max_num_seqs is not None:
            args += ["--max-num-seqs", str(o.max_num_seqs)]
        if o.tensor_parallel_size is not None:
            args += ["--tensor-parallel-size", str(o.tensor_parallel_size)]
        if o.trust_remote_code or cfg.trust_remote_code:
            args.append("--trust-remote-code")
        if o.chat_template:
            args += ["--chat-template", o.chat_template]
        return args + list(o.extra_args)


class SGLangBackend(EngineBackend):
    """``python -m sglang.launch_server --model-path MODEL ...``."""

    name = "sglang"

    def validate_options(self, options: EngineOptions) -> None:
        if options.gpu_memory_utilization is not None:
            raise ValueError(
                "sglang has no gpu_memory_utilization (a vLLM option); use mem_fraction_static"
            )
        if options.mm_processor_kwargs is not None:
            raise ValueError(
                "sglang takes no mm_processor_kwargs; pass engine flags through extra_args"
            )

    def default_launcher(self) -> list[str]:
        return [sys.executable, "-m", "sglang.launch_server"]

    def engine_arguments(self, port: int) -> list[str]:
        o, cfg = self.options, self.config
        args = ["--model-path", cfg.model, "--served-model-name", self.model_name]
        args += ["--host", "127.0.0.1", "--port", str(port)]
        if cfg.revision:
            args += ["--revision", cfg.revision]
        if o.dtype and o.dtype != "auto":
            args += ["--dtype", o.dtype]
        if o.max_model_len is not None:
            args += ["--context-length", str(o.max_model_len)]
        if o.mem_fraction_static is not None:
            args += ["--mem-fraction-static", str(o.mem_fraction_static)]
        if o.max_num_seqs is not None:
            args += ["--max-running-requests", str(o.max_num_seqs)]
        if o.tensor_parallel_size is not None:
            args += ["--tp-size", str(o.tensor_parallel_size)]
        if o.trust_remote_code or cfg.trust_remote_code:
            args.append("--trust-remote-code")
        if o.chat_template:
            args += ["--chat-template", o.chat_template]
        args.append("--enable-multimodal")
        if o.limit_mm_per_prompt is not None:
            args += ["--limit-mm-data-per-request", _json_arg(dict(o.limit_mm_per_prompt))]
        args += ["--api-key", self._internal_key]
        return args + list(o.extra_args)
