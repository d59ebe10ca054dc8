"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both tiny random-weight VLMs, built once per test session: ``{"llava": dir, ...}``."""
    torch = pytest.importorskip("torch")
    from vlmhyperbench.models.tiny import ARCHS, build_tiny_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_models")
    return {arch: build_tiny_model(root / arch, arch, seed=0) for arch in ARCHS}  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Inference API Wrapper servers for tests/integration/test_wrapper_*.py (real subprocesses).


class WrapperServer:
    """A ``python -m vlmhb_wrapper serve`` subprocess: its URL, process and log."""

    def __init__(self, name: str, base_url: str, process, log_path: Path, api_key: str) -> None:
        self.name, self.base_url, self.process = name, base_url, process
        self.log_path, self.api_key = log_path, api_key

    def client(self, **kwargs):
        import openai

        kwargs.setdefault("api_key", self.api_key)
        kwargs.setdefault("timeout", 60)
        return openai.OpenAI(base_url=f"{self.base_url}/v1", max_retries=0, **kwargs)

    def async_client(self, **kwargs):
        import openai

        kwargs.setdefault("api_key", self.api_key)
        kwargs.setdefault("timeout", 120)
        return openai.AsyncOpenAI(base_url=f"{self.base_url}/v1", max_retries=0, **kwargs)

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]

    def chat_requests_logged(self) -> int:
        """``POST /v1/chat/completions`` lines of this wrapper's own access log (the engine's
        forwarded lines are prefixed ``[vllm]``/``[sglang]`` and not counted)."""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return sum(
            1
            for line in text.splitlines()
            if "POST /v1/chat/completions" in line and "] INFO:" not in line
        )


def _wait_until_healthy(server: WrapperServer, timeout_s: float) -> None:
    """Until the wrapper's ``/health`` is 200 (``loading`` meanwhile); fails the test if it
    exits or is not ready in time."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"wrapper exited with {server.process.returncode}:\n{server.log()}")
        try:
            response = httpx.get(f"{server.base_url}/health", timeout=2)
            if response.status_code == 200:
                return
            assert response.json()["status"] == "loading", response.text
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"wrapper not ready after {timeout_s}s:\n{server.log()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def start_wrapper(tmp_path_factory: pytest.TempPathFactory):
    """``start_wrapper(*serve_args, name=..., env=..., wait=True)`` -> :class:`WrapperServer`.

    Starts the real CLI in its own session, waits for ``/health`` (unless ``wait=False``), and
    stops every server it started when the module ends.
    """
    import os
    import signal
    import subprocess
    import sys

    from vlmhyperbench.inference.launcher import free_port

    repo = Path(__file__).resolve().parents[1]
    started: list[WrapperServer] = []

    def start(
        *args: str,
        name: str = "tiny",
        env: dict[str, str] | None = None,
        wait: bool = True,
        timeout_s: float = 120,
        api_key: str = "unused",
    ) -> WrapperServer:
        workdir = tmp_path_factory.mktemp("wrapper")
        log_path = workdir / "wrapper.log"
        port = free_port()
        command = [
            sys.executable, "-m", "vlmhb_wrapper", "serve", "--port", str(port),
            "--served-model-name", name, *args,
        ]  # fmt: skip
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(repo / "wrapper" / "src"), str(repo / "src")]),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
            )
        server = WrapperServer(name, f"http://127.0.0.1:{port}", process, log_path, api_key)
        started.append(server)
        if wait:
            _wait_until_healthy(server, timeout_s)
        return server

    yield start

    for server in started:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGTERM)
    for server in started:
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
