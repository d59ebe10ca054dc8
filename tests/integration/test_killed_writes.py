"""Nothing torn, nothing left: a score or summary writer killed (SIGKILL) in the middle of its
write leaves the previous output (or none), and the next run leaves no temporary file behind.

The writer runs in a real subprocess; a hook in that process (not in the library) stops it
halfway through the Parquet write and tells the test, which then kills it: deterministic,
without racing a timer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd

from vlmhyperbench.datasets.manifest import Sample, write_manifest
from vlmhyperbench.runtime.io import TEMP_SUFFIX

# Runs in the child: the real score_predictions / write_summary, with pyarrow's Parquet writer
# wrapped so that it writes part of the file, flushes, signals and waits to be killed.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import pyarrow.parquet as pq

    ready = Path(sys.argv[1])
    real_write_table = pq.write_table

    def stalled_write_table(table, where, *args, **kwargs):
        where.write(b"PAR1" + b"\\0" * 65536)  # a torn start of a Parquet file
        where.flush()
        ready.write_text("writing")
        time.sleep(600)

    if sys.argv[2] == "stall":
        pq.write_table = stalled_write_table

    what = sys.argv[3]
    out = Path(sys.argv[4])
    if what == "score":
        from vlmhyperbench.metrics.scoring import score_predictions
        score_predictions(
            sys.argv[5], sys.argv[6], metric_name="exact_match",
            implementation="vlmhyperbench.metrics.text:exact_match", params={},
            higher_is_better=True, model="m", task="t", out_parquet=out / "exact_match.parquet",
            out_json=out / "exact_match.json", n_boot=50,
        )
    else:
        import pandas as pd  # its pyarrow engine calls pq.write_table
        from vlmhyperbench.reporting.summary import write_summary

        write_summary(pd.DataFrame({"a": [1, 2]}), out / "summary.parquet", out / "summary.csv")
    """
)


def _run_and_kill(args: list[str], ready: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", CHILD, str(ready), "stall", *args])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, "the writer exited before the hook was reached"
            assert time.monotonic() < deadline, "the writer never reached the Parquet write"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    manifest = write_manifest(
        tmp_path / "data", [Sample(id=f"s{i}", answers=[f"a{i}"]) for i in range(20)]
    )
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "prediction": f"a{i}", "error": None}) + "\n"
            for i in range(20)
        ),
        encoding="utf-8",
    )
    return predictions, manifest


def test_a_killed_score_job_leaves_no_partial_output_and_the_next_run_no_temp_file(
    tmp_path: Path,
) -> None:
    predictions, manifest = _inputs(tmp_path)
    out = tmp_path / "scores"
    args = ["score", str(out), str(predictions), str(manifest)]

    _run_and_kill(args, tmp_path / "ready")
    # Killed mid-write: no output, and the torn bytes only in a recognisable temporary file.
    assert not (out / "exact_match.parquet").exists()
    assert not (out / "exact_match.json").exists()
    left = _temp_files(out)
    assert len(left) == 1 and left[0].startswith(".exact_match.parquet.")
    assert left[0].endswith(TEMP_SUFFIX)

    # The next run (a new process) writes the outputs and removes what the killed one left.
    subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "unused"), "normal", *args], check=True
    )
    assert _temp_files(out) == []
    frame = pd.read_parquet(out / "exact_match.parquet")
    assert frame["value"].tolist() == [1.0] * 20
    assert json.loads((out / "exact_match.json").read_text("utf-8"))["overall"]["value"] == 1.0


def test_a_killed_summary_keeps_the_previous_summary_and_the_next_run_cleans_up(
    tmp_path: Path,
) -> None:
    out = tmp_path / "results"
    args = ["summary", str(out)]
    subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "x"), "normal", *args], check=True)
    before = (out / "summary.parquet").read_bytes()

    _run_and_kill(args, tmp_path / "ready")
    assert (out / "summary.parquet").read_bytes() == before  # the previous one, whole
    assert len(_temp_files(out)) == 1

    subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "x"), "normal", *args], check=True)
    assert _temp_files(out) == []
    assert pd.read_parquet(out / "summary.parquet")["a"].tolist() == [1, 2]
