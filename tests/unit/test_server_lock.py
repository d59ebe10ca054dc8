"""The server lock: predict jobs share a server, a perf job measures it alone."""

from __future__ import annotations

import select
import subprocess
import sys
import time
from pathlib import Path

from vlmhyperbench.inference.server import lock_path, server_lock

HOLD = """
import sys, time
from vlmhyperbench.inference.server import server_lock
with server_lock(sys.argv[1], exclusive=sys.argv[2] == "x", who="other"):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
    print("releasing", flush=True)
"""


def _holder(status: Path, mode: str, seconds: float) -> subprocess.Popen[str]:
    """Another process (as another Snakemake job is) holding the lock for ``seconds``."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(status), mode, str(seconds)],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def _released(holder: subprocess.Popen[str]) -> bool:
    """Whether the holder had said it was releasing the lock (it says so while holding it)."""
    assert holder.stdout is not None
    readable, _, _ = select.select([holder.stdout], [], [], 0)
    return bool(readable) and holder.stdout.readline() == "releasing\n"


def test_predict_jobs_share_the_server_and_a_perf_job_waits_for_them(tmp_path: Path) -> None:
    status = tmp_path / "servers" / "m.json"
    predicting = _holder(status, "s", 1.0)
    started = time.perf_counter()
    with server_lock(status, exclusive=False, who="predict 2"):  # shared: no wait
        assert time.perf_counter() - started < 0.5
    with server_lock(status, exclusive=True, who="perf"):  # waits for the predict job to end
        assert _released(predicting)
    predicting.wait()
    assert lock_path(status) == tmp_path / "servers" / "m.lock"


def test_a_predict_job_waits_for_a_perf_job_that_holds_the_server(tmp_path: Path) -> None:
    status = tmp_path / "m.json"
    measuring = _holder(status, "x", 1.0)
    with server_lock(status, exclusive=False, who="predict"):
        assert _released(measuring)  # it ended before the predict job could send
    measuring.wait()
