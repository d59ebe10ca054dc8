"""Adding a metric to a finished run: its wall time vs the full run, and which jobs it ran.

Runs the demo (the repo's ``config/``, copied into a temp workdir) from scratch, then adds a
registered metric to some of its tasks (``chrf`` to ``demo_ocr`` and ``demo_field_vqa`` by
default: on no task yet) and runs again. The second run must run only that metric's score jobs
(``score`` jobs whose ``metric`` wildcard is that metric), ``summarize``, ``report`` and ``all`` -
no other score job, no ``serve_*``, no ``predict_*`` - and start no model
server: no new ``loaded <model>`` line in ``logs/serve/*.wrapper.log`` (a run that starts
no server leaves them as they are). Prints both wall times, their ratio and the jobs of the
second run (from its Snakemake log); exits non-zero when a job outside those ran or a server
started. The demo takes ~1.5 min and one page per class instead of two saved only ~15%, so
there is no smaller variant.

    .venv/bin/python benchmarks/add_metric.py             # the demo, ~1.5 min on 2 CPU cores
    .venv/bin/python benchmarks/add_metric.py --metric anls --tasks demo_ocr --keep DIR
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers import job_counts, read_yaml, score_jobs, write_yaml  # noqa: E402

SNAKEFILE = REPO / "workflow" / "Snakefile"
ALLOWED = {"score", "summarize", "report", "all"}


def add_metric(root: Path, metric: str, tasks: list[str]) -> None:
    if not (root / "config" / "metrics" / f"{metric}.yaml").is_file():
        raise SystemExit(f"no metric {metric!r} in config/metrics")
    for task in tasks:
        path = root / "config" / "tasks" / f"{task}.yaml"
        entry = read_yaml(path)
        if metric in entry["metrics"]:
            raise SystemExit(f"{task} already has {metric}: pick a metric it lacks")
        entry["metrics"] = [*entry["metrics"], metric]
        write_yaml(path, entry)


def run(root: Path, timeout: float) -> tuple[float, str]:
    """Wall seconds of one snakemake run in ``root`` and its log (the newest .snakemake/log)."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
        "--directory", str(root), "--cores", "2",
    ]  # fmt: skip
    logs = root / ".snakemake" / "log"
    before = set(logs.glob("*.snakemake.log")) if logs.is_dir() else set()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=timeout, env=env
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"snakemake failed ({done.returncode}):\n{done.stderr[-6000:]}")
    new = sorted(set(logs.glob("*.snakemake.log")) - before, key=lambda p: p.stat().st_mtime)
    text = new[-1].read_text(encoding="utf-8") if new else done.stderr
    return elapsed, text


def loaded_lines(root: Path) -> dict[str, int]:
    """``loaded `` lines per wrapper log (each is one model load)."""
    return {
        path.name: sum(" loaded " in f" {line}" for line in path.read_text().splitlines())
        for path in sorted((root / "logs" / "serve").glob("*.wrapper.log"))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="chrf", help="a metric in config/metrics")
    parser.add_argument("--tasks", nargs="+", default=["demo_ocr", "demo_field_vqa"])
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    args = parser.parse_args()

    if args.keep:
        args.keep.mkdir(parents=True)
        root = args.keep.resolve()
    else:
        root = Path(tempfile.mkdtemp(prefix="vlmhb-add-metric-"))
    try:
        shutil.copytree(REPO / "config", root / "config")
        full_s, full_log = run(root, args.timeout)
        loads_before = loaded_lines(root)
        add_metric(root, args.metric, args.tasks)
        added_s, added_log = run(root, args.timeout)
        loads_after = loaded_lines(root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    full_jobs, added_jobs = job_counts(full_log), job_counts(added_log)
    new_loads = {
        name: loads_after.get(name, 0) - count
        for name, count in {**loads_after, **loads_before}.items()
        if loads_after.get(name, 0) != loads_before.get(name, 0)
    }
    added_scores = score_jobs(added_log)
    unexpected = sorted(rule for rule in added_jobs if rule not in ALLOWED)
    unexpected += sorted(f"score of {m}" for m in added_scores if m != args.metric)
    missing = sorted(rule for rule in ALLOWED if rule not in added_jobs)
    missing += [f"score of {args.metric}"] if args.metric not in added_scores else []

    print(f"demo: + {args.metric} on {', '.join(args.tasks)}")
    print(f"{'run':<12} {'jobs':>5} {'wall s':>8}")
    print(f"{'full':<12} {sum(full_jobs.values()):>5} {full_s:>8.1f}")
    print(f"{'add metric':<12} {sum(added_jobs.values()):>5} {added_s:>8.1f}")
    print(f"ratio add/full: {added_s / full_s:.2f}")
    print("add-metric run jobs: " + ", ".join(f"{r} {n}" for r, n in sorted(added_jobs.items())))
    print("its score jobs by metric: " + ", ".join(f"{m} {n}" for m, n in added_scores.items()))
    print(f"model loads in the full run: {sum(loads_before.values())} ({loads_before})")
    print(f"model loads in the add-metric run: {sum(new_loads.values())}")
    problems = []
    if unexpected:
        problems.append(f"jobs that should not run: {', '.join(unexpected)}")
    if missing:
        problems.append(f"jobs that did not run: {', '.join(missing)}")
    if new_loads:
        problems.append(f"model servers started: {new_loads}")
    if problems:
        raise SystemExit("FAIL: " + "; ".join(problems))
    print("OK: only the new metric's score jobs, summarize, report and all; no server started")


if __name__ == "__main__":
    main()
