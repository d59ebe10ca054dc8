"""An infrastructure failure is never a model's answer, on the paths the resume tests leave out.

Real upstreams (the wrapper on the hf backend with a tiny model), a real ``snakemake`` run: the
upstream behind the wrapper's ``openai`` proxy backend is killed, or an endpoint's upstream (and
one behind the proxy) is stopped with SIGSTOP. Each time the predict job fails naming the model,
the upstream and the cause, journals nothing for the samples it could not get, and the re-run
sends exactly the missing ones.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import make_workdir, snakemake, snakemake_command
from tests.integration.test_resume import (
    MODEL,
    TASK,
    check_complete,
    journal_ids,
    rerun_against_new_server,
    start_server,
    wait_for,
)
from vlmhyperbench.datasets.manifest import read_manifest
from vlmhyperbench.inference.launcher import free_port, stop

pytestmark = pytest.mark.slow

STALL_S = 4


def start_proxy(upstream_port: int, port: int, log_path: Path, *extra: str) -> subprocess.Popen:
    """The wrapper's ``openai`` backend in front of the upstream on ``upstream_port``."""
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "vlmhb_wrapper", "serve", "--backend", "openai",
            "--model", MODEL, "--upstream-base-url", f"http://127.0.0.1:{upstream_port}/v1",
            "--host", "127.0.0.1", "--port", str(port), *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 120, "the proxy to be healthy")
    return process


def setup(tmp_path: Path, via_proxy: bool, *proxy_args: str):
    """A tiny model served on a free port (behind the proxy when ``via_proxy``), and a workdir
    whose endpoint model calls it: (model folder, workdir, upstream port, processes)."""
    from vlmhyperbench.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "model", arch="llava", seed=0)
    upstream_port, endpoint_port = free_port(), free_port()
    upstream = start_server(model_dir, upstream_port, tmp_path / "upstream1.log")
    processes = [upstream]
    if via_proxy:
        processes.append(
            start_proxy(upstream_port, endpoint_port, tmp_path / "proxy.log", *proxy_args)
        )
    else:
        endpoint_port = upstream_port
    workdir = make_workdir(
        tmp_path / "wd",
        models=[MODEL],
        tasks=[TASK],
        # request_timeout_s stays long: finding a hung server must not depend on it.
        inference={"concurrency": 2, "max_retries": 1, "stall_timeout_s": STALL_S},
        overrides={
            "models": {MODEL: {"endpoint": {"base_url": f"http://127.0.0.1:{endpoint_port}/v1"}}}
        },
    )
    snakemake(workdir, "data/demo_docs_vqa/manifest.jsonl")
    return model_dir, workdir, upstream_port, processes


def run_and_break(workdir: Path, upstream: subprocess.Popen, how: signal.Signals):
    """Start the workflow, send ``how`` to the upstream once 4 answers are journaled; wait for
    snakemake: (its output, its exit code, seconds from the signal to its end)."""
    process = subprocess.Popen(
        snakemake_command(workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: len(journal_ids(workdir)) >= 4, 300, "the first answers")
        os.killpg(upstream.pid, how)
        broken = time.monotonic()
        output, _ = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    return output, process.returncode, time.monotonic() - broken


def check_failure_and_rerun(
    tmp_path: Path, model_dir: Path, workdir: Path, upstream_port: int, output: str, code: int
) -> None:
    assert code != 0, output[-3000:]
    assert f"{MODEL}/{TASK}: the server at" in output and "stopped answering" in output
    assert "re-run to send only the missing samples" in output
    assert not (workdir / "results" / "predictions" / MODEL / f"{TASK}.jsonl").exists()
    journal = (workdir / "results" / ".journal" / MODEL / f"{TASK}.jsonl").read_text()
    assert '"error": null' in journal
    assert "HTTP 5" not in journal and '"error": "' not in journal, "a failure journaled"
    answered_before = journal_ids(workdir)
    total = len(read_manifest(workdir / "data" / "demo_docs_vqa" / "manifest.jsonl"))
    assert len(answered_before) < total

    sent_again = rerun_against_new_server(
        workdir, model_dir, upstream_port, tmp_path / "upstream2.log"
    )
    assert sent_again == total - len(answered_before), "lost or repeated samples"
    check_complete(workdir)


def test_upstream_killed_behind_the_openai_proxy(tmp_path: Path) -> None:
    """The issue's case: killed upstream, proxy answers 503 while its own /health is fine.
    Before: 41 of 60 samples journaled as "HTTP 503" answers, snakemake exited 0."""
    model_dir, workdir, port, processes = setup(tmp_path, via_proxy=True)
    upstream, proxy = processes
    try:
        output, code, _ = run_and_break(workdir, upstream, signal.SIGKILL)
        upstream.wait()
        assert f"127.0.0.1:{port}" in output, "the cause names the upstream"
        log = (workdir / "logs" / "predict" / MODEL / f"{TASK}.log").read_text()
        assert "retry 1 of 1" in log and "(after 2 tries)" in log, "retries and cause logged"
        check_failure_and_rerun(tmp_path, model_dir, workdir, port, output, code)
    finally:
        stop(proxy)
        stop(upstream, grace_s=0.1)


@pytest.mark.parametrize("via_proxy", [False, True], ids=["endpoint", "proxy"])
def test_hung_upstream_is_found_within_the_stall_timeout(tmp_path: Path, via_proxy: bool) -> None:
    """SIGSTOP: the upstream accepts connections and says nothing. Before: found only after
    request_timeout_s (300 s here) x retries."""
    proxy_args = ("--engine-health-interval", "1", "--engine-health-failures", "2")
    model_dir, workdir, port, processes = setup(tmp_path, via_proxy, *proxy_args)
    upstream = processes[0]
    try:
        output, code, seconds = run_and_break(workdir, upstream, signal.SIGSTOP)
        assert seconds < STALL_S + 40, f"took {seconds:.0f} s to notice"
        print(f"hung upstream ({'proxy' if via_proxy else 'endpoint'}) noticed in {seconds:.1f} s")
        if via_proxy:
            assert f"the upstream http://127.0.0.1:{port}/v1 stopped answering" in output
        else:
            assert "no answer for" in output and f"127.0.0.1:{port}/health" in output
        os.killpg(upstream.pid, signal.SIGKILL)
        upstream.wait()
        check_failure_and_rerun(tmp_path, model_dir, workdir, port, output, code)
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
