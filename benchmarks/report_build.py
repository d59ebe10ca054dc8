"""Report build at scale: 20 models × 25 tasks × 20 metrics × 1,000 samples.

Synthesises a results folder (not timed), builds the report in a child process and prints the
build's wall time, its peak memory (max RSS of the child) and the size of index.html.
Goal: < 60 s, < 2 GiB, index.html < 25 MB.

    .venv/bin/python benchmarks/report_build.py [--models 20 --tasks 25 --metrics 20 --samples 1000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.synthetic_results import (  # noqa: E402
    add_scale_arguments,
    write_synthetic_results_once,
)

BUILD = """
import logging
import sys
logging.basicConfig(level=logging.INFO, format="  %(message)s", stream=sys.stdout)
from vlmhyperbench.reporting.build import build_report
report = build_report(sys.argv[1], sys.argv[2])
print(len(report.files), "files,", len(report.warnings), "gaps")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    args = parser.parse_args()

    root = args.workdir or Path(tempfile.mkdtemp(prefix="vlmhb-report-bench-"))
    results = write_synthetic_results_once(root / "results", args)
    out = root / "report"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(results), str(out)], check=True, capture_output=True
    )
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    index = out / "index.html"
    size = index.stat().st_size
    figures = len(list((out / "figures").glob("*.svg")))
    print(done.stdout.decode().strip())
    print(
        f"{args.models} models × {args.tasks} tasks × {args.metrics} metrics × "
        f"{args.samples} samples: build {wall:.1f} s, peak memory {peak_kib / 1024:.0f} MiB, "
        f"index.html {size / 1e6:.1f} MB, {figures} figures (SVG + PDF), "
        f"comparisons.csv {(out / 'comparisons.csv').stat().st_size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
