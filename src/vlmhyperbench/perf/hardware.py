"""Which machine a load figure came from: CPU model and cores, memory, GPUs by name.

* :func:`hardware` - measured by the perf job beside its server, with the GPUs the serve job
  gave the server (its status file's ``gpus``): what the report shows beside each figure.
* :func:`machine_identity` - the planning machine's, for the perf job's fingerprint: a local
  run measured on another machine is another result. (On Kubernetes the planning host is not
  where the job runs; there the model entry's ``resources`` - in the fingerprint too - and
  the node pool decide the hardware, and the report shows what the job measured.)
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence

from vlmhyperbench.perf.result import Hardware


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def memory_gib() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


@functools.cache
def gpu_names() -> dict[str, str]:
    """GPU index -> name, from ``nvidia-smi`` (none where there is no NVIDIA driver)."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {}
    rows = (line.split(",", 1) for line in listing.splitlines() if "," in line)
    return {index.strip(): name.strip() for index, name in rows}


def _label(cpu: str, cores: int, gpus: Sequence[str]) -> str:
    if not gpus:
        return f"{cpu}, {cores} cores (no GPU)"
    names = sorted(set(gpus))
    return ", ".join(f"{gpus.count(name)}× {name}" for name in names)


def hardware(gpu_ids: Sequence[str] = ()) -> Hardware:
    """This machine, with the GPUs ``gpu_ids`` (``CUDA_VISIBLE_DEVICES`` indexes)."""
    names = gpu_names()
    gpus = [names.get(str(index), f"GPU {index}") for index in gpu_ids]
    cpu, cores = cpu_model(), usable_cpus()
    return Hardware(
        cpu=cpu, cpu_count=cores, memory_gib=memory_gib(), gpus=gpus,
        label=_label(cpu, cores, gpus),
    )  # fmt: skip


@functools.cache
def machine_identity() -> dict[str, object]:
    """What the fingerprint keeps of the planning machine: CPU model, cores, every GPU."""
    return {"cpu": cpu_model(), "cpu_count": usable_cpus(), "gpus": sorted(gpu_names().values())}
