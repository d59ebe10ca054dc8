"""Which GPUs a serve job may use, when Snakemake runs several model servers on one machine.

``snakemake --resources gpu=N`` only counts GPUs: a job holding ``resources.gpu = k`` is not told
*which* k. Each serve job therefore claims its own ids here and starts its server with
``CUDA_VISIBLE_DEVICES`` set to them, so no two servers share a GPU.

A claim is one ``fcntl.flock`` per GPU id on a lock file under a shared directory. The kernel
drops a flock when the holder's file is closed, which happens on any exit, SIGKILL included:
a killed serve job frees its GPUs with no stale-lock cleanup. The lock files are never deleted
(deleting a file another process is about to lock would let two holders lock different inodes
of the same name). Lock descriptors are not inherited by child processes (Python's default),
so the lock lives exactly as long as the claiming process holds the block open.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

_NVIDIA_SMI_TIMEOUT_S = 30


class GpuSlotsError(RuntimeError):
    """No GPUs could be claimed: the machine has too few, or the others stayed busy too long."""


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The GPU ids this machine offers.

    ``CUDA_VISIBLE_DEVICES`` wins when set, split on commas (ids or UUIDs kept as given, blanks
    dropped; set but empty = ``[]``, CUDA's own meaning of "no GPUs"): a user who narrowed it
    expects servers to stay inside it. Otherwise the GPUs ``nvidia-smi -L`` lists, as ids
    ``"0".."n-1"`` (the indices CUDA uses by default); nvidia-smi missing or failing = ``None``.

    ``None`` means unknown (no GPU info at all): callers then start the server without touching
    ``CUDA_VISIBLE_DEVICES`` rather than guessing. ``nvidia-smi`` is looked up on ``environ``'s
    PATH, or the process's when ``environ`` has none.
    """
    env = os.environ if environ is None else environ
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return [part.strip() for part in cvd.split(",") if part.strip()]
    exe = shutil.which("nvidia-smi", path=env.get("PATH"))
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "-L"],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    # "GPU 0: NVIDIA H100 (UUID: GPU-...)"; MIG devices are indented lines below their GPU.
    count = sum(1 for line in proc.stdout.splitlines() if line.startswith("GPU "))
    return [str(i) for i in range(count)]


def cuda_env(ids: list[str]) -> dict[str, str]:
    """The environment entry that confines a server to the claimed ``ids``."""
    return {"CUDA_VISIBLE_DEVICES": ",".join(ids)}


def _lock_path(slots_dir: Path, gpu: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", gpu)
    if safe != gpu:  # two ids that sanitize alike must not share a lock
        safe += "-" + hashlib.sha256(gpu.encode()).hexdigest()[:8]
    return slots_dir / f"gpu-{safe}.lock"


def _try_lock(path: Path, holder: str) -> int | None:
    """The locked descriptor, with ``holder`` written in; ``None`` when someone else holds it."""
    # No O_TRUNC: opening must not wipe the name of the current holder.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode("utf-8", "replace"), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _release(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)  # a free slot names no holder
    os.close(fd)  # closing drops the flock


def _holder_of(path: Path) -> str:
    """Who holds ``path`` now: "free", the holder's text, or "?" if it wrote none (yet)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "free"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            return text or "?"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return "free"
    finally:
        os.close(fd)


@contextlib.contextmanager
def claim_gpus(
    count: int,
    gpus: list[str],
    slots_dir: Path,
    *,
    timeout_s: float = 600,
    poll_s: float = 0.2,
    holder: str = "",
) -> Iterator[list[str]]:
    """Hold ``count`` of ``gpus`` for the block; yields the claimed ids in the order of ``gpus``.

    One lock file per id under ``slots_dir`` (``gpu-<id>.lock``, the id made filename-safe),
    taken with ``flock(LOCK_EX | LOCK_NB)``; ``holder`` (e.g. ``"tiny-llava pid 123"``) is
    written into each so a waiting claimant can say who holds what. Polls every ``poll_s``
    until enough ids are free, at most ``timeout_s`` (0 = one try), then raises
    :class:`GpuSlotsError` naming the count, the ids and their holders. Between tries every
    partial claim is released: two claimants each holding half of what both need would
    otherwise wait on each other until the timeout.

    ``count > len(gpus)`` raises at once (waiting cannot help); ``count == 0`` yields ``[]``
    without touching ``slots_dir``. Everything is released when the block exits, exceptions
    included, and by the kernel if the process dies.
    """
    if count < 0:
        raise GpuSlotsError(f"a model cannot want {count} GPUs")
    if count == 0:
        yield []
        return
    gpus = list(dict.fromkeys(gpus))  # a repeated id is one GPU
    if count > len(gpus):
        raise GpuSlotsError(
            f"model wants {count} GPUs, this machine offers {gpus} - "
            "check --resources gpu= and CUDA_VISIBLE_DEVICES"
        )
    slots_dir = Path(slots_dir)
    slots_dir.mkdir(parents=True, exist_ok=True)
    paths = {gpu: _lock_path(slots_dir, gpu) for gpu in gpus}
    deadline = time.monotonic() + timeout_s
    held: dict[str, int] = {}
    try:
        while True:
            for gpu in gpus:
                fd = _try_lock(paths[gpu], holder)
                if fd is not None:
                    held[gpu] = fd
                    if len(held) == count:
                        break
            if len(held) == count:
                break
            for fd in held.values():
                _release(fd)
            held.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                holders = ", ".join(f"{gpu}: {_holder_of(paths[gpu])}" for gpu in gpus)
                raise GpuSlotsError(
                    f"waited {timeout_s:g} s for {count} free GPUs of {gpus} "
                    f"(lock files in {slots_dir}); holders: {holders}"
                )
            time.sleep(min(poll_s, remaining))
        yield list(held)
    finally:
        for fd in held.values():
            _release(fd)
