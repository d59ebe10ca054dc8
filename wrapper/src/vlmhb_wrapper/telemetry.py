"""Torch-free telemetry: the ``performance`` object, and per-request peak memory.

Peak memory is sampled, not guessed: a :class:`MemoryMonitor` runs one background thread that
reads a :class:`MemoryProbe` every ``interval_s`` while at least one request is in flight, and
each request keeps the maximum seen between its start and its end (plus a reading at each end).

Probes, in order of preference:

* NVML (``nvidia-ml-py``) when a GPU is visible: the GPU memory of the serving process(es)
  (the wrapper itself for ``hf``, the engine's process tree for ``vllm``/``sglang``), or the
  whole device's used memory where per-process numbers are not visible (e.g. in a container
  whose PID namespace differs from the driver's);
* otherwise the resident set size of the same process(es) (``psutil``).

``memory_source`` in every answer says which one was used.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psutil

from vlmhb_wrapper.backends.base import GenerationRequest, GenerationResult, MemoryReading
from vlmhb_wrapper.schemas import Performance

logger = logging.getLogger(__name__)

__all__ = [
    "MemoryMonitor",
    "MemoryProbe",
    "NvmlProbe",
    "ProcessTree",
    "RssProbe",
    "make_probe",
    "ms",
    "performance_of",
]

_MIB = 1024 * 1024


def ms(seconds: float) -> float:
    """Seconds -> milliseconds, rounded to microseconds for stable JSON."""
    return round(seconds * 1000.0, 3)


def performance_of(
    result: GenerationResult,
    request: GenerationRequest,
    *,
    backend: str,
    admission_s: float = 0.0,
) -> Performance:
    """The ``performance`` object of one answer, from the backend's time marks.

    ``queue_ms`` is all waiting before generation: for a slot of the wrapper's admission
    limit (``admission_s``, ``--max-concurrent-requests``) plus the backend's own queue."""
    n = result.completion_tokens
    first, last = result.first_token, result.last_token
    generate_s = max(result.finished - result.gen_start, 0.0)
    tpot = None
    if first is not None and last is not None and n > 1:
        tpot = ms((last - first) / (n - 1))
    return Performance(
        latency_ms=ms(result.finished - request.arrival),
        ttft_ms=ms(first - request.arrival) if first is not None else None,
        tpot_ms=tpot,
        queue_ms=ms(admission_s + result.queue_s),
        media_ms=round(request.media_ms, 3),
        preprocess_ms=ms(result.preprocess_s),
        generate_ms=ms(generate_s),
        prompt_tokens=result.prompt_tokens,
        completion_tokens=n,
        tokens_per_s=round(n / generate_s, 3) if generate_s > 0 else 0.0,
        peak_memory_mb=(
            round(result.memory.peak_mb, 3) if result.memory.peak_mb is not None else None
        ),
        memory_source=result.memory.source,  # type: ignore[arg-type]
        device=result.device,
        backend=backend,
        batch_size=result.batch_size,
        gpu_allocator_peak_mb=result.gpu_allocator_peak_mb,
        upstream=result.upstream,
    )


# ------------------------------------------------------------------------------------ probes


class MemoryProbe:
    """Reads the current memory of something; ``read()`` -> (MiB, source) or None."""

    def read(self) -> tuple[float, str] | None:  # pragma: no cover - interface
        raise NotImplementedError


PidsFn = Callable[[], Sequence[int]]


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (those still alive)."""
    try:
        proc = psutil.Process(pid)
        return [pid, *(child.pid for child in proc.children(recursive=True))]
    except psutil.Error:
        return []


class ProcessTree:
    """``process_tree(pid)``, re-scanned at most every ``refresh_s`` (a scan walks /proc)."""

    def __init__(self, pid: int, refresh_s: float = 2.0) -> None:
        self.pid, self.refresh_s = pid, refresh_s
        self._pids: list[int] = []
        self._at = -float("inf")
        self._lock = threading.Lock()

    def __call__(self) -> list[int]:
        now = time.monotonic()
        with self._lock:
            if now - self._at > self.refresh_s:
                self._pids, self._at = process_tree(self.pid), now
            return self._pids


class RssProbe(MemoryProbe):
    """Sum of the resident set sizes of ``pids()``."""

    def __init__(self, pids: PidsFn | None = None) -> None:
        self._pids = pids or (lambda: [os.getpid()])
        self._procs: dict[int, psutil.Process] = {}

    def read(self) -> tuple[float, str] | None:
        total = 0
        for pid in self._pids():
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                total += proc.memory_info().rss
            except psutil.Error:
                self._procs.pop(pid, None)
        return (total / _MIB, "process_rss") if total else None


class NvmlProbe(MemoryProbe):
    """GPU memory of ``pids()`` from NVML (summed over the visible GPUs), falling back to the
    devices' total used memory when the driver lists none of those processes."""

    def __init__(self, nvml: Any, handles: list[Any], pids: PidsFn | None = None) -> None:
        self._nvml = nvml
        self._handles = handles
        self._pids = pids or (lambda: [os.getpid()])

    @classmethod
    def create(cls, pids: PidsFn | None = None) -> NvmlProbe | None:
        """An NVML probe, or None when there is no NVML library or no GPU."""
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in _visible_indices(count)]
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            logger.debug("NVML unavailable: %s", exc)
            return None
        return cls(pynvml, handles, pids) if handles else None

    def read(self) -> tuple[float, str] | None:
        nvml = self._nvml
        pids = set(self._pids())
        try:
            per_process = 0
            matched = False
            for handle in self._handles:
                for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid in pids and proc.usedGpuMemory is not None:
                        matched = True
                        per_process += proc.usedGpuMemory
            if matched:
                return per_process / _MIB, "gpu_nvml_process"
            used = sum(nvml.nvmlDeviceGetMemoryInfo(h).used for h in self._handles)
            return used / _MIB, "gpu_nvml_device"
        except Exception as exc:
            logger.debug("NVML read failed: %s", exc)
            return None


def _visible_indices(count: int) -> list[int]:
    """NVML indices of the GPUs ``CUDA_VISIBLE_DEVICES`` exposes (numeric form only)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        return list(range(count)) if visible is None else []
    indices = []
    for item in visible.split(","):
        item = item.strip()
        if not item.isdigit():
            return list(range(count))  # UUIDs / MIG names: cannot map, take all
        if int(item) < count:
            indices.append(int(item))
    return indices


def make_probe(pids: PidsFn | None = None, *, gpu: bool = True) -> MemoryProbe:
    """NVML when asked for and available, else RSS."""
    if gpu:
        probe = NvmlProbe.create(pids)
        if probe is not None:
            return probe
    return RssProbe(pids)


# ----------------------------------------------------------------------------------- monitor


class _Window:
    __slots__ = ("peak", "source")

    def __init__(self) -> None:
        self.peak: float | None = None
        self.source = "unavailable"

    def add(self, reading: tuple[float, str] | None) -> None:
        if reading is not None and (self.peak is None or reading[0] > self.peak):
            self.peak, self.source = reading


class MemoryMonitor:
    """Per-request peak memory from periodic samples of one probe."""

    def __init__(self, probe: MemoryProbe | None, interval_s: float = 0.05) -> None:
        self.probe = probe
        self.interval_s = interval_s
        self._windows: set[_Window] = set()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.last: tuple[float, str] | None = None

    def open(self) -> _Window:
        window = _Window()
        if self.probe is None:
            return window
        window.add(self._read())
        with self._cv:
            self._windows.add(window)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vlmhb-memory", daemon=True)
                self._thread.start()
            self._cv.notify()
        return window

    def close(self, window: _Window) -> MemoryReading:
        if self.probe is None:
            return MemoryReading(None, "unavailable")
        with self._cv:
            self._windows.discard(window)
        window.add(self._read())
        return MemoryReading(window.peak, window.source)

    def shutdown(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    def _read(self) -> tuple[float, str] | None:
        assert self.probe is not None
        reading = self.probe.read()
        if reading is not None:
            self.last = reading
        return reading

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._windows and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
            reading = self._read()
            with self._cv:
                for window in self._windows:
                    window.add(reading)
            time.sleep(self.interval_s)
