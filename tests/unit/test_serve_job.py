"""The serve job's status file contract (inference/server.py) and its standby state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vlmhyperbench.config.schema import InferenceSettings, ModelEntry
from vlmhyperbench.inference.serve_job import run_serve_job
from vlmhyperbench.inference.server import (
    FAILED,
    READY,
    STANDBY,
    ServerUnavailable,
    read_status,
    wait_for_server,
    wanted_path,
    write_status,
)


def test_placeholder_and_missing_file_read_as_no_status(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    assert read_status(path) is None
    path.touch()  # Snakemake's placeholder, or the serve job's shell before Python starts
    assert read_status(path) is None
    write_status(path, status=READY, model="m", base_url="http://127.0.0.1:1/v1")
    assert read_status(path) == {
        "pid": os.getpid(), "status": READY, "model": "m", "base_url": "http://127.0.0.1:1/v1",
    }  # fmt: skip


def test_a_predict_job_asks_for_the_server_and_waits_until_it_is_ready(tmp_path: Path) -> None:
    path = tmp_path / "m.json"

    def serve() -> None:
        write_status(path, status=STANDBY, model="m")
        while not wanted_path(path).exists():
            time.sleep(0.01)
        write_status(path, status=READY, model="m", base_url="http://127.0.0.1:9/v1")

    server = threading.Thread(target=serve)
    server.start()
    status = wait_for_server(path, "m", silent_timeout_s=10, poll_s=0.01)
    server.join()
    assert status["base_url"] == "http://127.0.0.1:9/v1"


def test_a_failed_server_fails_the_predict_job_with_its_error(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    write_status(path, status=FAILED, model="m", error="CUDA out of memory", log="logs/s.log")
    with pytest.raises(ServerUnavailable, match=r"failed to start \(see logs/s.log\): CUDA out"):
        wait_for_server(path, "m", silent_timeout_s=5)


def test_a_dead_serve_job_is_not_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    path.write_text(f'{{"status": "{STANDBY}", "pid": {int(gone.stdout)}}}', encoding="utf-8")
    with pytest.raises(ServerUnavailable, match=r"the serve job of m \(pid \d+\) is gone"):
        wait_for_server(path, "m", silent_timeout_s=5)


def test_a_serve_job_that_never_writes_is_not_waited_for_forever(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.touch()
    with pytest.raises(ServerUnavailable, match="wrote no status"):
        wait_for_server(path, "m", silent_timeout_s=0.3, poll_s=0.05)


def test_a_serve_job_no_predict_job_asks_loads_nothing_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    model = ModelEntry.model_validate(
        {"name": "m", "source": {"type": "local", "path": str(tmp_path / "weights")}}
    )
    status = tmp_path / "servers" / "m.json"
    status.parent.mkdir()
    wanted_path(status).touch()  # left by a killed run: not a request of this one
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    run_serve_job(
        model,
        InferenceSettings(),
        status_path=status,
        log_path=tmp_path / "serve.log",
        wrapper_log_path=tmp_path / "wrapper.log",
        media_roots=[tmp_path],
        gpu_slots_dir=tmp_path / "slots",
    )
    timer.join()
    assert read_status(status)["status"] == STANDBY
    assert not (tmp_path / "wrapper.log").exists(), "no wrapper was started"
    assert not wanted_path(status).exists()
