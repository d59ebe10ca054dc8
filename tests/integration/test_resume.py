"""Crash safety of the predict stage: a killed job or a dying server loses and repeats nothing."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.helpers import make_workdir, snakemake, snakemake_command
from vlmhyperbench.datasets.manifest import read_manifest
from vlmhyperbench.inference.launcher import free_port, stop

pytestmark = pytest.mark.slow

MODEL = "tiny-llava"
TASK = "demo_field_vqa"
OTHER_TASK = "demo_doc_class"


def journal_ids(workdir: Path, task: str = TASK) -> list[str]:
    path = workdir / "results" / ".journal" / MODEL / f"{task}.jsonl"
    if not path.exists():
        return []
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        with contextlib.suppress(json.JSONDecodeError, KeyError):
            ids.append(json.loads(line)["id"])
    return ids


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def processes_mentioning(text: str) -> list[int]:
    """Processes whose command line names ``text`` (a workdir: its jobs, servers, wrappers)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(pid))
    return found


def requests_of_last_server(log_path: Path) -> int:
    """Chat requests the most recently started wrapper logged (uvicorn access log)."""
    text = log_path.read_text(encoding="utf-8")
    last_start = text.rfind("Started server process")
    assert last_start >= 0, f"no wrapper start in {log_path}"
    return text[last_start:].count("POST /v1/chat/completions")


def check_complete(workdir: Path) -> list[dict]:
    """Each manifest sample exactly once in the output and in the journal."""
    manifest_ids = [
        s.id for s in read_manifest(workdir / "data" / "demo_docs_vqa" / "manifest.jsonl")
    ]
    output = workdir / "results" / "predictions" / MODEL / f"{TASK}.jsonl"
    lines = [json.loads(x) for x in output.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == manifest_ids
    assert all(x["error"] is None and x["prediction"] is not None for x in lines)
    journal = journal_ids(workdir)
    assert sorted(journal) == sorted(manifest_ids), "a sample was sent twice or lost"
    return lines


def test_killed_run_leaves_no_server_and_resumes_loading_the_model_once(
    tmp_path: Path,
) -> None:
    """SIGKILL to Snakemake itself while the model's shared server is up: its serve and predict
    jobs and the wrapper follow (PR_SET_PDEATHSIG), and the re-run sends only what is missing,
    loading the model once for both tasks."""
    workdir = make_workdir(
        tmp_path / "wd", models=[MODEL], tasks=[TASK, OTHER_TASK], inference={"concurrency": 1}
    )
    targets = [f"results/predictions/{MODEL}/{task}.jsonl" for task in (TASK, OTHER_TASK)]
    snakemake(workdir, f"models/tiny/{MODEL}", "data/demo_docs_vqa/manifest.jsonl")
    process = subprocess.Popen(
        snakemake_command(workdir, *targets),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(journal_ids(workdir)) >= 4, 300, "the first answers in the journal")
        assert processes_mentioning(f"--served-model-name {MODEL}"), "no shared server runs"
    finally:
        os.kill(process.pid, signal.SIGKILL)  # Snakemake alone: its children must follow
        process.wait()
    answered_before = journal_ids(workdir)
    other_before = journal_ids(workdir, OTHER_TASK)
    total = len(read_manifest(workdir / "data" / "demo_docs_vqa" / "manifest.jsonl"))
    assert 4 <= len(answered_before) < total, "the kill should land mid-run"
    assert not (workdir / targets[0]).exists()
    # The kernel stops the serve job, the predict jobs and the wrapper: nothing is left behind.
    wait_for(lambda: not processes_mentioning(str(workdir)), 30, "the run's processes to exit")

    wrapper_log = workdir / "logs" / "serve" / f"{MODEL}.wrapper.log"
    rerun_started = datetime.now()
    snakemake(workdir, "--unlock")
    snakemake(workdir, "--rerun-incomplete", *targets)
    other_total = len(
        read_manifest(workdir / "data" / "demo_docs_classification" / "manifest.jsonl")
    )
    missing = total - len(answered_before) + other_total - len(other_before)
    assert requests_of_last_server(wrapper_log) == missing
    assert loaded_lines(wrapper_log, since=rerun_started) == 1, "one load for both tasks"
    check_complete(workdir)


def logged_since(log: Path, since: datetime) -> list[str]:
    """The lines of ``log`` stamped (``logging``'s asctime) at or after ``since``: Snakemake
    may keep a re-run job's log or start it anew."""
    if not log.exists():
        return []
    found = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            if datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") >= since:
                found.append(line)
    return found


def loaded_lines(wrapper_log: Path, since: datetime, model: str = MODEL) -> int:
    """The wrapper's "loaded <model> … in <s>s" lines in its log since ``since``."""
    loaded = re.compile(rf" loaded {re.escape(model)} \(.* in \d+\.\d+s")
    return sum(1 for line in logged_since(wrapper_log, since) if loaded.search(line))


def rerun_against_new_server(workdir: Path, model_dir: Path, port: int, log_path: Path) -> int:
    """Start a fresh server on ``port``, re-run the workflow to the end, and return how many
    chat requests that server got (the samples the re-run sent)."""
    server = start_server(model_dir, port, log_path)
    try:
        snakemake(workdir)
    finally:
        stop(server)
    return log_path.read_text(encoding="utf-8").count("POST /v1/chat/completions")


def start_server(
    model_dir: Path,
    port: int,
    log_path: Path,
    backend: tuple[str, ...] = ("--backend", "hf"),
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "vlmhb_wrapper", "serve", *backend,
            "--model", str(model_dir), "--served-model-name", MODEL,
            "--host", "127.0.0.1", "--port", str(port), "--threads", "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 300, "the wrapper to be healthy")
    return process


def endpoint_workdir(tmp_path: Path) -> tuple[Path, Path, int]:
    """A tiny model, and a workdir whose model entry points at a server on a free port (not
    started yet), with the dataset built: (model folder, workdir, port)."""
    from vlmhyperbench.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "model", arch="llava", seed=0)
    port = free_port()
    workdir = make_workdir(
        tmp_path / "wd",
        models=[MODEL],
        tasks=[TASK],
        inference={"concurrency": 2, "max_retries": 0},
        overrides={"models": {MODEL: {"endpoint": {"base_url": f"http://127.0.0.1:{port}/v1"}}}},
    )
    snakemake(workdir, "data/demo_docs_vqa/manifest.jsonl")
    return model_dir, workdir, port


def test_server_dying_mid_run_fails_the_job_and_the_rerun_sends_only_missing(
    tmp_path: Path,
) -> None:
    model_dir, workdir, port = endpoint_workdir(tmp_path)
    server = start_server(model_dir, port, tmp_path / "server1.log")
    process = subprocess.Popen(
        snakemake_command(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: len(journal_ids(workdir)) >= 4, 300, "the first answers")
    finally:
        stop(server, grace_s=0.1)
    output, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "stopped answering" in output and "re-run to send only the missing samples" in output
    answered_before = journal_ids(workdir)
    total = len(read_manifest(workdir / "data" / "demo_docs_vqa" / "manifest.jsonl"))
    assert len(answered_before) < total

    sent_again = rerun_against_new_server(workdir, model_dir, port, tmp_path / "server2.log")
    assert sent_again == total - len(answered_before)
    check_complete(workdir)
    assert (workdir / "results" / "report" / "leaderboard.md").exists()


@pytest.mark.parametrize(
    ("how", "cause"),
    [
        (signal.SIGKILL, "killed by signal 9"),
        # Alive but silent: the wrapper's health watchdog (1 s here) stops it (issue 15, point 2).
        (signal.SIGSTOP, "health checks in a row failed"),
    ],
    ids=["killed", "stopped"],
)
def test_engine_dying_behind_the_wrapper_fails_the_job_and_the_rerun_sends_only_missing(
    tmp_path: Path, how: signal.Signals, cause: str
) -> None:
    """A vllm-backend wrapper (the engine: tests/fake_engine.py) whose engine is killed (or
    stopped) mid-run answers 503 and reports itself failed: the job stops with the engine's
    death in its message instead of journaling the remaining samples as failed, and the re-run
    sends only those."""
    model_dir, workdir, port = endpoint_workdir(tmp_path)
    fake_engine = Path(__file__).resolve().parents[1] / "fake_engine.py"
    record = tmp_path / "engines.jsonl"
    vllm = (
        "--backend", "vllm", "--engine-launcher", f"{sys.executable} {fake_engine} vllm",
        "--engine-health-interval", "1",
    )  # fmt: skip
    env = {"FAKE_ENGINE_RECORD": str(record)}
    server = start_server(model_dir, port, tmp_path / "server1.log", vllm, env)
    process = subprocess.Popen(
        snakemake_command(workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: len(journal_ids(workdir)) >= 4, 300, "the first answers")
        engine_pid = json.loads(record.read_text().splitlines()[-1])["pid"]
        os.kill(engine_pid, how)
        broken = time.monotonic()
        output, _ = process.communicate(timeout=300)
        print(f"engine {how.name}: the job ended {time.monotonic() - broken:.1f} s later")
    finally:
        stop(server, grace_s=5)
    assert process.returncode != 0
    assert "stopped answering" in output and cause in output
    answered_before = journal_ids(workdir)
    journal = workdir / "results" / ".journal" / MODEL / f"{TASK}.jsonl"
    assert '"error": null' in journal.read_text() and "HTTP 503" not in journal.read_text()
    total = len(read_manifest(workdir / "data" / "demo_docs_vqa" / "manifest.jsonl"))
    assert len(answered_before) < total

    server = start_server(model_dir, port, tmp_path / "server2.log", vllm, env)
    try:
        snakemake(workdir)
    finally:
        stop(server, grace_s=5)
    lines = (tmp_path / "server2.log").read_text(encoding="utf-8").splitlines()
    # The wrapper's own access log, not the engine's (its lines are tagged "[vllm]").
    sent_again = [x for x in lines if "POST /v1/chat/completions" in x and "[vllm]" not in x]
    assert len(sent_again) == total - len(answered_before)
    check_complete(workdir)
