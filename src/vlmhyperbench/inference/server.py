"""One model server per model per run, shared by all of that model's predict jobs.

The ``serve_<model>`` job is a Snakemake *service* job: Snakemake runs it in one group with the
model's predict jobs (one pod on Kubernetes), starts it with them, and terminates it (SIGTERM)
once the last of them is done. It tells the predict jobs where the server is through its service
output, a small JSON status file written atomically::

    {"status": "standby" | "starting" | "ready" | "failed", "pid": <serve job>, "model": "…",
     "model_path": "<local model folder or hub id>", "log": "logs/serve/<model>.log",
     "base_url": "http://127.0.0.1:…/v1", "gpus": ["0"], "error": "…"}

The serve job starts the Inference API Wrapper (loads the model) only once a predict job asks
for it by creating the *wanted* file next to the status file (:func:`wait_for_server` does): a
predict job re-run with every sample already in its journal (say, only the expected answers
changed) loads no model. A predict job waits for ``ready`` and fails at once, with the server's
error, on ``failed`` or when the serve job is gone: it never waits out a dead server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlmhyperbench.runtime.io import atomic_write

log = logging.getLogger("vlmhyperbench.serve")

STANDBY = "standby"
STARTING = "starting"
READY = "ready"
FAILED = "failed"


class ServerUnavailable(RuntimeError):
    """The model's shared server failed to start, or its serve job is gone."""


def wanted_path(status_path: str | os.PathLike[str]) -> Path:
    """The file a predict job creates to ask the serve job to start the server."""
    return Path(status_path).with_suffix(".wanted")


def write_status(path: str | os.PathLike[str], **fields: Any) -> None:
    with atomic_write(path) as handle:
        json.dump({"pid": os.getpid(), **fields}, handle, sort_keys=True)


def read_status(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The status, or ``None`` while there is none yet (no file, or Snakemake's empty
    placeholder: see ``rules/inference.smk``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    if not text.strip():
        return None
    try:
        status = json.loads(text)
    except json.JSONDecodeError:
        return None
    return status if isinstance(status, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_server(
    path: str | os.PathLike[str],
    model: str,
    silent_timeout_s: float = 120,
    poll_s: float = 0.2,
) -> dict[str, Any]:
    """The status of ``model``'s server once it is ready (``base_url`` is where to send).

    Asks for the server (the *wanted* file) as soon as the serve job has created its status
    file, and waits as long as the serve job lives (it has its own limits: the startup timeout,
    waiting for GPUs, installing the model's packages), but at most ``silent_timeout_s`` for it
    to write anything at all.
    """
    deadline = time.monotonic() + silent_timeout_s
    wanted = wanted_path(path)
    while True:
        # Asked again whenever it is missing: the serve job removes a stale one as it starts.
        if Path(path).exists() and not wanted.exists():
            wanted.touch()
        status = read_status(path)
        if status is not None:
            see = f" (see {status['log']})" if status.get("log") else ""
            if status.get("status") == FAILED:
                raise ServerUnavailable(
                    f"the server of {model} failed to start{see}: {status.get('error')}"
                )
            pid = status.get("pid")
            if isinstance(pid, int) and not _alive(pid):
                raise ServerUnavailable(f"the serve job of {model} (pid {pid}) is gone{see}")
            if status.get("status") == READY:
                return status
        elif time.monotonic() >= deadline:
            raise ServerUnavailable(
                f"the serve job of {model} wrote no status to {path} in {silent_timeout_s:.0f} s"
            )
        time.sleep(poll_s)


def lock_path(status_path: str | os.PathLike[str]) -> Path:
    """The lock that keeps a server's load measurements apart from everything else it serves."""
    return Path(status_path).with_suffix(".lock")


@contextlib.contextmanager
def server_lock(status_path: str | os.PathLike[str], exclusive: bool, who: str) -> Iterator[None]:
    """Hold the server's lock while sending to it: predict jobs share it, a perf job holds it
    alone (``exclusive``), so a load measurement never overlaps another job's requests.

    Snakemake starts the jobs of a serve job's group together (its dependencies inside the
    group are not waited for), so the jobs order themselves here, by an ``flock`` on a file
    beside the status file: it is released when its holder ends, however it ends.
    """
    path = lock_path(status_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = "other jobs" if exclusive else "a load measurement (perf job)"
            log.info("%s: waiting for %s on this server to finish (%s)", who, holders, path)
            fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def model_info(path: str | os.PathLike[str], timeout_s: float = 30) -> dict[str, Any]:
    """What the serve job said about the model (its local path) as soon as it says anything,
    for a predict job with nothing left to send; ``{}`` if it says nothing in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = read_status(path)
        if status is not None:
            return status
        time.sleep(0.2)
    return {}


class Terminated(Exception):
    """SIGTERM: Snakemake stops a service job this way once its consumers are done."""


@contextlib.contextmanager
def stop_on_sigterm():
    """Turn SIGTERM into :class:`Terminated`, so the wrapper is stopped on the way out."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
