"""``vlmhb view`` at paper scale: 20 models × 25 tasks × 20 metrics × 1,000 samples.

Synthesises a results folder with ``tests/synthetic_results.py`` (not timed; reused from
``--workdir``) and a manifest per task whose samples point at a few page images, starts
``vlmhb view`` (with ``--baseline``: a second run, another seed) as a child process, and prints
the time to the first answered overview, each page's time over HTTP (cold: the task's first
visit, which reads its files; warm: again) and the server's peak memory (VmHWM).
Goals: start < 2 s, a heavy task page < 0.5 s, ≤ 1 GiB.

    .venv/bin/python benchmarks/explorer.py [--models 20 --tasks 25 --metrics 20 --samples 1000]
        [--workdir DIR] [--no-baseline]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.synthetic_results import (  # noqa: E402
    add_scale_arguments,
    write_synthetic_results_once,
)
from vlmhyperbench.inference.launcher import free_port  # noqa: E402
from vlmhyperbench.metrics.scoring import read_predictions  # noqa: E402

PAGES = 10  # page images per dataset (the samples share them)


def write_datasets(data: Path, results: Path) -> None:
    """``data/{task}_data/manifest.jsonl`` (the dataset the synthetic provenance names) with
    every sample of the task, and ``PAGES`` page images."""
    for scores in sorted((results / "scores" / "model-00").iterdir()):
        task = scores.name
        folder = data / f"{task}_data"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        for k in range(PAGES):
            image = Image.new("RGB", (800, 1100), "white")
            ImageDraw.Draw(image).text((40, 40), f"{task} page {k}", fill="black")
            image.save(folder / "images" / f"page-{k:02d}.png")
        ids = list(read_predictions(results / "predictions" / "model-00" / f"{task}.jsonl"))
        lines = [
            {"id": i, "images": [f"images/page-{n % PAGES:02d}.png"],
             "question": "Какая фамилия указана?", "answers": ["ok"], "doc_class": "passport",
             "question_type": "surname", "subset": "clean", "meta": {}}
            for n, i in enumerate(ids)
        ]  # fmt: skip
        text = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
        (folder / "manifest.jsonl").write_text(text, encoding="utf-8")


def synthesise(root: Path, args: argparse.Namespace, seed: int) -> Path:
    results = write_synthetic_results_once(root / "results", args, seed)
    if not (root / "data").is_dir():
        write_datasets(root / "data", results)
    return results


def start_server(results: Path, baseline: Path | None) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    command = [sys.executable, "-m", "vlmhyperbench.cli", "view", str(results), "--port", str(port)]
    command += ["--baseline", str(baseline)] if baseline else []
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(url + "/", timeout=30).status_code == 200:
                return process, url, time.perf_counter() - start
        except httpx.HTTPError:
            if process.poll() is not None:
                raise SystemExit("vlmhb view exited") from None
            time.sleep(0.02)


def timed(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    response = httpx.get(url, timeout=120)
    response.raise_for_status()
    return time.perf_counter() - start, len(response.content)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (wall time depends on the machine's load)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_memory_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(url: str, args: argparse.Namespace, diff: bool) -> list[tuple[str, float, int]]:
    last = f"model-{args.models - 1:02d}"
    heavy = urlencode({"right": last, "wrong": "model-00", "q": "иван", "sort": "disagreement"})
    other = urlencode(
        {"metric": f"metric_{args.metrics - 1:02d}", "below": "0.5", "sort": f"score:{last}"}
    )
    rows = []
    for k, task in enumerate(f"task_{t:02d}" for t in (0, 1, args.tasks - 1)):
        page = f"{url}/task/{task}?{heavy}"
        rows.append((f"{task} heavy filter, cold (reads the task)", *timed(page)))
        rows.append((f"{task} heavy filter, warm", *timed(page)))
        if k == 0:
            rows.append((f"{task} another metric, cold", *timed(f"{url}/task/{task}?{other}")))
            rows.append((f"{task} page 20 of all", *timed(f"{url}/task/{task}?page=20")))
            sample = quote(f"{task}-00017-clean")
            rows.append((f"{task} sample page", *timed(f"{url}/task/{task}/sample?id={sample}")))
            rows.append((f"{task} export (500 rows)", *timed(f"{url}/task/{task}/export?{heavy}")))
            if diff:
                rows.append((f"{task} run diff, cold", *timed(f"{url}/task/{task}/diff")))
                rows.append((f"{task} run diff, warm", *timed(f"{url}/task/{task}/diff")))
    rows.append(("overview", *timed(url + "/")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scale_arguments(parser)
    parser.add_argument("--workdir", type=Path, default=None, help="keep (and reuse) the files")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run diff")
    args = parser.parse_args()

    root = args.workdir or Path(tempfile.mkdtemp(prefix="vlmhb-explorer-bench-"))
    results = synthesise(root / "run", args, seed=0)
    baseline = None if args.no_baseline else synthesise(root / "base", args, seed=1)
    process, url, started = start_server(results, baseline)
    start_cpu = cpu_seconds(process.pid)
    try:
        rows = measure(url, args, diff=baseline is not None)
        peak = peak_memory_mib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(
        f"{args.models} models × {args.tasks} tasks × {args.metrics} metrics × {args.samples} "
        f"samples{' + baseline' if baseline else ''}: first overview after {started:.2f} s "
        f"({start_cpu:.2f} s of CPU; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores)"
    )
    for name, seconds, size in rows:
        print(f"  {name:<45} {seconds:6.3f} s  {size / 1e3:8.0f} kB")
    print(f"peak memory of the server {peak:.0f} MiB")


if __name__ == "__main__":
    main()
