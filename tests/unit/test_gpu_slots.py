"""GPU slots: which GPUs each concurrently running serve job gets (flock per GPU id)."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vlmhyperbench.inference.gpu_slots import GpuSlotsError, claim_gpus, cuda_env, visible_gpus

# A claimant in its own process: claims, prints the ids as JSON, holds them until stdin has a
# line (or closes), then exits.
_CLAIMANT = """
import json, sys
from pathlib import Path
from vlmhyperbench.inference.gpu_slots import claim_gpus
slots, count, gpus, holder, timeout = sys.argv[1:]
with claim_gpus(int(count), json.loads(gpus), Path(slots), timeout_s=float(timeout),
                poll_s=0.02, holder=holder) as ids:
    print(json.dumps(ids), flush=True)
    sys.stdin.readline()
"""


def _start(slots: Path, holder: str, *, count: int = 1, gpus=("0", "1"), timeout: float = 10):
    return subprocess.Popen(
        [sys.executable, "-c", _CLAIMANT, str(slots), str(count), json.dumps(list(gpus)), holder,
         str(timeout)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _ids(proc: subprocess.Popen, wait_s: float = 10) -> list[str] | None:
    """The ids the claimant printed, or None if it printed nothing within ``wait_s``."""
    ready, _, _ = select.select([proc.stdout], [], [], wait_s)
    if not ready:
        return None
    line = proc.stdout.readline()
    assert line, f"claimant exited without claiming (rc {proc.wait()})"
    return json.loads(line)


def _finish(proc: subprocess.Popen) -> None:
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.wait(timeout=10) == 0


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# --- visible_gpus -------------------------------------------------------------------------

_UUID = "GPU-8a1b2c3d-0000-1111-2222-333344445555"


@pytest.mark.parametrize(
    ("cvd", "expected"),
    [
        ("0,1", ["0", "1"]),
        ("2", ["2"]),
        (" 1 , ,3,", ["1", "3"]),
        (f"{_UUID},1", [_UUID, "1"]),
        ("", []),
        (" , ", []),
    ],
)  # fmt: skip
def test_visible_gpus_from_cuda_visible_devices(cvd, expected, monkeypatch, tmp_path):
    # An nvidia-smi on PATH that would say otherwise: CUDA_VISIBLE_DEVICES must win.
    _fake_smi(tmp_path, "echo 'GPU 0: X (UUID: GPU-a)'; echo 'GPU 1: X (UUID: GPU-b)'; "
              "echo 'GPU 2: X (UUID: GPU-c)'")  # fmt: skip
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": cvd}) == expected


def _fake_smi(directory: Path, body: str) -> None:
    script = directory / "nvidia-smi"
    script.write_text(f'#!/bin/sh\n[ "$1" = "-L" ] || exit 9\n{body}\n')
    script.chmod(0o755)


def test_visible_gpus_from_nvidia_smi(monkeypatch, tmp_path):
    _fake_smi(
        tmp_path,
        "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)'\n"
        "echo '  MIG 1g.10gb     Device  0: (UUID: MIG-bbbb)'\n"
        "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-cccc)'",
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpus({}) == ["0", "1"]
    assert visible_gpus() == ["0", "1"]  # os.environ by default


def test_visible_gpus_nvidia_smi_failing_or_missing_is_unknown(monkeypatch, tmp_path):
    _fake_smi(tmp_path, "echo 'GPU 0: X (UUID: GPU-a)'\nexit 1")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpus({}) is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert visible_gpus({}) is None


def test_cuda_env():
    assert cuda_env(["1", "3"]) == {"CUDA_VISIBLE_DEVICES": "1,3"}
    assert cuda_env([]) == {"CUDA_VISIBLE_DEVICES": ""}


# --- claim_gpus across processes -----------------------------------------------------------


def test_two_processes_get_different_gpus_and_a_third_waits(tmp_path, procs):
    slots = tmp_path / "slots"
    a = _start(slots, "model-a")
    procs.append(a)
    ids_a = _ids(a)
    b = _start(slots, "model-b")
    procs.append(b)
    ids_b = _ids(b)
    assert len(ids_a) == len(ids_b) == 1
    assert sorted(ids_a + ids_b) == ["0", "1"]

    c = _start(slots, "model-c")
    procs.append(c)
    assert _ids(c, wait_s=0.5) is None  # both GPUs held: it waits
    assert c.poll() is None
    _finish(a)
    assert _ids(c) == ids_a
    _finish(b)
    _finish(c)


def test_sigkilled_holder_frees_its_gpu(tmp_path, procs):
    slots = tmp_path / "slots"
    a = _start(slots, "doomed", gpus=["0"])
    procs.append(a)
    assert _ids(a) == ["0"]
    with pytest.raises(GpuSlotsError, match=r"doomed"), claim_gpus(1, ["0"], slots, timeout_s=0):
        pass
    os.kill(a.pid, signal.SIGKILL)
    assert a.wait(timeout=10) == -signal.SIGKILL
    start = time.monotonic()
    with claim_gpus(1, ["0"], slots, timeout_s=5) as ids:
        assert ids == ["0"]
    assert time.monotonic() - start < 1  # freed by the kernel, not by a timeout


def test_timeout_names_count_ids_and_holders(tmp_path, procs):
    slots = tmp_path / "slots"
    a = _start(slots, "tiny-llava pid 123", gpus=["0"])
    procs.append(a)
    assert _ids(a) == ["0"]
    with (
        claim_gpus(1, ["1"], slots, holder="qwen pid 7"),
        pytest.raises(GpuSlotsError) as err,
        claim_gpus(1, ["0", "1"], slots, timeout_s=0.2, poll_s=0.05),
    ):
        pass
    message = str(err.value)
    assert "1 free GPUs of ['0', '1']" in message
    assert "0: tiny-llava pid 123" in message
    assert "1: qwen pid 7" in message


# --- claim_gpus in one process (flock is per open file: these exclude each other too) -------


def test_count_above_offer_fails_at_once(tmp_path):
    start = time.monotonic()
    with pytest.raises(GpuSlotsError) as err, claim_gpus(3, ["0", "1"], tmp_path, timeout_s=60):
        pass
    assert time.monotonic() - start < 1
    message = str(err.value)
    assert "wants 3 GPUs" in message
    assert "['0', '1']" in message
    assert "--resources gpu=" in message
    assert "CUDA_VISIBLE_DEVICES" in message


def test_count_zero_touches_nothing(tmp_path):
    slots = tmp_path / "never-made"
    with claim_gpus(0, [], slots, timeout_s=0.5) as ids:
        assert ids == []
    with claim_gpus(0, ["0"], slots, timeout_s=0.5) as ids:
        assert ids == []
    assert not slots.exists()


def test_claims_in_order_and_release_on_exception(tmp_path):
    with claim_gpus(2, ["3", "1", "2"], tmp_path, holder="x") as ids:
        assert ids == ["3", "1"]
        with claim_gpus(1, ["3", "1", "2"], tmp_path) as more:
            assert more == ["2"]
    with pytest.raises(ValueError), claim_gpus(3, ["3", "1", "2"], tmp_path):
        raise ValueError("server failed to start")
    with claim_gpus(3, ["3", "1", "2"], tmp_path, timeout_s=0) as ids:
        assert ids == ["3", "1", "2"]


def test_partial_claim_is_released_between_tries(tmp_path):
    # A claimant waiting for 2 of ["0", "1"] while "1" is held must not sit on "0": another
    # claimant needing only "0" gets it (two half-holders would otherwise wait on each other).
    result: list = []
    with claim_gpus(1, ["1"], tmp_path, holder="other"):
        waiter = threading.Thread(
            target=lambda: result.append(_claim_and_return(2, ["0", "1"], tmp_path)),
        )
        waiter.start()
        _wait_for(lambda: (tmp_path / "gpu-0.lock").exists())
        with claim_gpus(1, ["0"], tmp_path, timeout_s=3, poll_s=0.001) as ids:
            assert ids == ["0"]
            assert waiter.is_alive()
    waiter.join(timeout=10)
    assert result == [["0", "1"]]


def _claim_and_return(count: int, gpus: list[str], slots: Path) -> list[str]:
    with claim_gpus(count, gpus, slots, timeout_s=10, poll_s=0.02) as ids:
        return ids


def _wait_for(condition, wait_s: float = 10) -> None:
    deadline = time.monotonic() + wait_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_partial_claim_is_released_on_timeout(tmp_path):
    with (
        claim_gpus(1, ["1"], tmp_path, holder="other"),
        pytest.raises(GpuSlotsError),
        claim_gpus(2, ["0", "1"], tmp_path, timeout_s=0),
    ):
        pass
    # GPU 0 was taken and must have been given back.
    with claim_gpus(1, ["0"], tmp_path, timeout_s=0) as ids:
        assert ids == ["0"]


def test_ids_are_filename_safe_and_distinct(tmp_path):
    slots = tmp_path / "slots"
    odd = ["MIG-1/2", "MIG-1_2", "../x"]
    with claim_gpus(3, odd, slots, timeout_s=0) as ids:
        assert ids == odd
    assert {p.parent for p in slots.rglob("*")} == {slots}
    assert len(list(slots.iterdir())) == 3
