"""Start the Inference API Wrapper for a model on a free loopback port, and stop it afterwards."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from vlmhyperbench.config.schema import HubSource, ModelEntry


class WrapperStartError(RuntimeError):
    """The wrapper died or never became healthy; the message carries its last log lines."""


#: The wrapper's own cap on a request's ``max_tokens`` (``--max-new-tokens-limit``'s default).
WRAPPER_MAX_NEW_TOKENS = 4096


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wrapper_command(
    model: ModelEntry,
    model_path: str,
    port: int,
    media_roots: list[Path],
    host: str = "127.0.0.1",
    stall_timeout_s: float | None = None,
    max_concurrent_requests: int | None = None,
    max_new_tokens: int | None = None,
) -> list[str]:
    """The ``vlmhb-wrapper serve`` command line for a model entry (same launcher as the CLI).

    The entry's engine args travel as ``--engine-args-json`` (only the ones set; the wrapper
    turns them into ``vllm serve`` / ``sglang.launch_server`` flags, or uses the subset the
    hf backend understands), a hub model's revision as ``--revision``, and an ``openai``
    entry's endpoint as ``--upstream-*`` (its key stays in the environment variable).
    ``stall_timeout_s`` sets the health watchdog over the engine or upstream: a check every
    sixth of it, three failures in a row (each waits one interval) - so a hung engine is found
    within about ``stall_timeout_s``, as the predict job's own stall check expects.
    ``max_concurrent_requests`` caps the requests the wrapper generates at once, whoever sends
    them (one wrapper serves all of a model's tasks). ``max_new_tokens`` raises the wrapper's
    cap on a request's ``max_tokens`` (its own default: 4096) to what the run's tasks ask.
    """
    command = [
        sys.executable,
        "-m",
        "vlmhb_wrapper",
        "serve",
        "--backend",
        model.backend,
        "--model",
        model_path,
        "--served-model-name",
        model.name,
        "--host",
        host,
        "--port",
        str(port),
    ]
    threads = model.engine_args.torch_threads or model.resources.threads
    command += ["--threads", str(threads)]
    if isinstance(model.source, HubSource):
        command += ["--revision", model.source.revision]
    engine_args = model.engine_args.model_dump(
        mode="json", exclude={"torch_threads"}, exclude_defaults=True
    )
    if engine_args:
        command += ["--engine-args-json", json.dumps(engine_args, sort_keys=True)]
    if model.backend == "openai" and model.endpoint is not None:
        command += ["--upstream-base-url", model.endpoint.url()]
        command += ["--upstream-model", model.endpoint.model or model.name]
        if model.endpoint.api_key_env:
            command += ["--upstream-api-key-env", model.endpoint.api_key_env]
    if stall_timeout_s is not None and model.backend in ("vllm", "sglang", "openai"):
        command += ["--engine-health-interval", f"{stall_timeout_s / 6:g}"]
        command += ["--engine-health-failures", "3"]
    if max_concurrent_requests is not None:
        command += ["--max-concurrent-requests", str(max_concurrent_requests)]
    if max_new_tokens is not None:
        command += ["--max-new-tokens-limit", str(max_new_tokens)]
    for root in media_roots:
        command += ["--allowed-media-root", str(root)]
    return command


def die_with_parent() -> None:
    """Linux: have the kernel send this process SIGTERM when its parent dies (even by SIGKILL or
    the OOM killer). A wrapper started here dies with the job that started it, and a serve job
    with the Snakemake that started it — otherwise a killed run leaves a model server holding
    memory and GPUs. No-op elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def wrapper_process(
    build_command: Callable[[int], list[str]],
    log_path: Path,
    startup_timeout_s: float = 600,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``build_command(port)`` until the block ends; yields the base URL (``…/v1``) and the
    process (to wait on it).

    The wrapper's output goes to ``log_path``. If it exits or is not healthy within the timeout,
    ``WrapperStartError`` carries the last lines of its log.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            build_command(port),
            stdout=log,
            stderr=subprocess.STDOUT,
            # Unbuffered, so the log is complete up to the moment the wrapper dies.
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,  # so we can stop the whole process group
            preexec_fn=die_with_parent,
        )
    base = f"http://{host}:{port}"
    try:
        _wait_healthy(process, base, log_path, startup_timeout_s)
        yield f"{base}/v1", process
    finally:
        stop(process)


@contextlib.contextmanager
def running_wrapper(
    build_command: Callable[[int], list[str]],
    log_path: Path,
    startup_timeout_s: float = 600,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """:func:`wrapper_process`, yielding only the base URL."""
    with wrapper_process(build_command, log_path, startup_timeout_s, host, env) as (url, _):
        yield url


def _wait_healthy(process: subprocess.Popen, base: str, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise WrapperStartError(
                    f"the wrapper exited with code {process.returncode} before it was ready; "
                    f"last lines of {log_path}:\n{tail(log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                response = client.get(f"{base}/health")
                if response.status_code == 200:
                    return
                if response.status_code == 503 and response.json().get("status") == "failed":
                    raise WrapperStartError(
                        f"the wrapper failed to load the model: {response.text}; "
                        f"last lines of {log_path}:\n{tail(log_path)}"
                    )
            time.sleep(0.2)
    raise WrapperStartError(
        f"the wrapper was not healthy after {timeout_s:.0f} s; "
        f"last lines of {log_path}:\n{tail(log_path)}"
    )


def stop(process: subprocess.Popen, grace_s: float = 10) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def health(base_url: str, timeout_s: float = 5.0, api_key: str | None = None) -> tuple[bool, str]:
    """Whether the server behind ``…/v1`` still answers its health check, and what it says.

    ``GET /health`` (the wrapper, vLLM, SGLang); a server without one (404: an external API)
    counts as alive when ``GET /v1/models`` answers without a 5xx.
    """
    root = base_url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{root}/health", timeout=timeout_s)
        if response.status_code == 404:
            models = httpx.get(f"{root}/v1/models", timeout=timeout_s, headers=headers)
            if models.status_code < 500:
                return True, f"answers /v1/models (HTTP {models.status_code})"
            response = models
    except httpx.TimeoutException:
        return False, f"{root}/health did not answer within {timeout_s:g} s"
    except httpx.HTTPError as exc:
        return False, f"{root}/health: {type(exc).__name__}: {exc}"
    if response.status_code == 200:
        return True, "ready"
    try:
        detail = response.json().get("detail") or response.text
    except (ValueError, AttributeError):
        detail = response.text
    return False, f"HTTP {response.status_code}: {detail}"[:2000]
