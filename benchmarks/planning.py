"""Planning cost: ``snakemake -n`` of the workflow vs a plain Snakefile with the same jobs.

A paper-sized study (20 models x 25 tasks x 20 metrics, ~10.5k jobs) is generated in a temp dir
from copies of the tiny models, the field-VQA task and three text metrics. Every arm dry-runs the
same DAG (dataset, model builds, a serve job per model, predict per (model, task) in one group
with its model's serve job, score per (model, task, metric),
summary, a report on the summary, the score tables and the predictions). The plain Snakefile has
one generic rule per stage, constant strings, no input functions and ``shell:`` bodies - the
least Snakemake itself can cost for that DAG; the goal is ours <= 1.5x its time and peak memory.
Ours has one rule per model for serve and predict and one ``score`` rule with a ``{metric}``
wildcard, whose params (the job's ``--spec`` and fingerprint) are input functions. A third arm is
the same plain Snakefile with ``script:`` bodies, as our predict, summarize and report rules have
(the score and serve rules are ``shell:``): Snakemake reads a script rule's source once per job
while planning, a cost of its own. Sizes are timed in
alternating rounds (best time of ``--rounds``, highest peak); peak memory is the child's max
RSS (``os.wait4``).

    .venv/bin/python benchmarks/planning.py              # ~10 min on 2 busy cores
    .venv/bin/python benchmarks/planning.py --sizes 1/8 --rounds 1 --profile prof.out
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"

# (models, tasks) per size; metrics per task stay 20, so the job count scales with the pairs.
SIZES = {"1/8": (5, 12), "1/4": (10, 12), "1/2": (10, 25), "1": (20, 25)}
METRICS = 20
BASE_METRICS = ["exact_match", "anls", "cer"]

PLAIN = """\
MODELS = {models!r}
TASKS = {tasks!r}
METRICS = {metrics!r}


rule all:
    input:
        "results/summary.csv",
        "results/report/leaderboard.md",


rule generate_dataset:
    output:
        manifest="data/demo_docs_vqa/manifest.jsonl",
    {action}


rule build_tiny_model:
    output:
        model=directory("models/tiny/{{model}}"),
    {action}


rule serve:
    input:
        model=ancient("models/tiny/{{model}}"),
    output:
        server=service("results/.servers/{{model}}.json"),
    {action}


rule predict:
    input:
        manifest="data/demo_docs_vqa/manifest.jsonl",
        model="models/tiny/{{model}}",
        server=ancient("results/.servers/{{model}}.json"),
    output:
        predictions="results/predictions/{{model}}/{{task}}.jsonl",
    threads: 0
    params:
        fingerprint="0123456789abcdef",
    {action}


rule score:
    input:
        predictions="results/predictions/{{model}}/{{task}}.jsonl",
        manifest="data/demo_docs_vqa/manifest.jsonl",
    output:
        per_sample="results/scores/{{model}}/{{task}}/{{metric}}.parquet",
        aggregate="results/scores/{{model}}/{{task}}/{{metric}}.json",
    params:
        fingerprint="0123456789abcdef",
    {action}


rule summarize:
    input:
        expand(
            "results/scores/{{model}}/{{task}}/{{metric}}.json",
            model=MODELS, task=TASKS, metric=METRICS,
        ),
    output:
        parquet="results/summary.parquet",
        csv="results/summary.csv",
    {action}


rule report:
    input:
        summary="results/summary.parquet",
        scores=expand(
            "results/scores/{{model}}/{{task}}/{{metric}}.parquet",
            model=MODELS, task=TASKS, metric=METRICS,
        ),
        predictions=expand(
            "results/predictions/{{model}}/{{task}}.jsonl", model=MODELS, task=TASKS
        ),
    output:
        leaderboard="results/report/leaderboard.md",
    {action}
"""


# The plain arms' rule bodies: ``shell:`` (the baseline), and ``script:`` as our rules have it
# (Snakemake reads a script rule's source once per job while planning; this arm shows that cost).
ACTIONS = {
    "plain": 'shell:\n        "touch {output}"',
    "plain-script": 'script:\n        "noop.py"',
}


def write_yaml(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(payload, allow_unicode=True, sort_keys=False), encoding="utf-8")


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def make_study(root: Path, n_models: int, n_tasks: int) -> tuple[list[str], list[str], list[str]]:
    """The registries of the repo plus copies: models m01.., tasks t01.., metrics x01.."""
    shutil.copytree(REPO / "config", root / "config")
    registry = root / "config"
    model = read_yaml(registry / "models" / "tiny-llava.yaml")
    task = read_yaml(registry / "tasks" / "demo_field_vqa.yaml")
    models = [f"m{i:02d}" for i in range(1, n_models + 1)]
    tasks = [f"t{i:02d}" for i in range(1, n_tasks + 1)]
    metrics = [f"x{i:02d}" for i in range(1, METRICS + 1)]
    for i, name in enumerate(models):
        write_yaml(
            registry / "models" / f"{name}.yaml",
            {**model, "source": {**model["source"], "seed": i}},
        )
    for i, name in enumerate(metrics):
        base = read_yaml(registry / "metrics" / f"{BASE_METRICS[i % len(BASE_METRICS)]}.yaml")
        write_yaml(registry / "metrics" / f"{name}.yaml", base)
    for i, name in enumerate(tasks):
        prompt = {**task["prompt"], "user": f"{task['prompt']['user']} ({i})"}
        write_yaml(
            registry / "tasks" / f"{name}.yaml", {**task, "prompt": prompt, "metrics": metrics}
        )
    write_yaml(
        registry / "config.yaml",
        {
            "name": "planning",
            "registry_dir": "config",
            "models": models,
            "tasks": tasks,
            "overrides": {"datasets": {"demo_docs_vqa": {"source": {"params": {"per_class": 1}}}}},
        },
    )
    for arm, action in ACTIONS.items():
        (root / arm).mkdir()
        (root / arm / "noop.py").write_text("", encoding="utf-8")
        (root / arm / "Snakefile").write_text(
            PLAIN.format(models=models, tasks=tasks, metrics=metrics, action=action),
            encoding="utf-8",
        )
    return models, tasks, metrics


def dry_run(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MiB) of one ``snakemake -n`` child, and its output tail."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-4000:]}")
    return elapsed, usage.ru_maxrss / 1024, output


def job_total(output: str) -> int:
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return int(parts[1])
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", help="also run the workflow arm under cProfile into FILE")
    args = parser.parse_args()
    snakemake = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--quiet", "rules"]
    rows = []
    for size in args.sizes:
        n_models, n_tasks = SIZES[size]
        with tempfile.TemporaryDirectory(prefix="vlmhb-planning-") as tmp:
            root = Path(tmp)
            make_study(root, n_models, n_tasks)
            ours = [*snakemake, "--snakefile", str(SNAKEFILE), "--directory", str(root)]
            arms = {"ours": (ours, root)}
            for arm in ACTIONS:
                arms[arm] = ([*snakemake, "--snakefile", str(root / arm / "Snakefile")], root / arm)
            best = {arm: (float("inf"), 0.0) for arm in arms}
            jobs = {}
            for _ in range(args.rounds):
                for arm, (command, cwd) in arms.items():
                    seconds, rss, output = dry_run(command, cwd)
                    jobs[arm] = job_total(output)
                    best[arm] = (min(best[arm][0], seconds), max(best[arm][1], rss))
            if len(set(jobs.values())) != 1:
                raise SystemExit(f"job counts differ at {size}: {jobs}")
            if args.profile:
                profile = str(Path(args.profile).resolve())
                profiled = [sys.executable, "-m", "cProfile", "-o", profile, *arms["ours"][0][1:]]
                subprocess.run(profiled, cwd=root, check=True, capture_output=True)
            rows.append((size, jobs["ours"], best))
    print(
        f"{'size':>5} {'jobs':>6} {'ours s':>8} {'plain s':>8} {'time x':>7} "
        f"{'ours MiB':>9} {'plain MiB':>9} {'mem x':>6} {'script s':>9} {'vs script x':>11}"
    )
    for size, jobs_n, best in rows:
        (ours_s, ours_mb), (plain_s, plain_mb) = best["ours"], best["plain"]
        script_s = best["plain-script"][0]
        print(
            f"{Fraction(size)!s:>5} {jobs_n:>6} {ours_s:>8.2f} {plain_s:>8.2f} "
            f"{ours_s / plain_s:>7.2f} {ours_mb:>9.0f} {plain_mb:>9.0f} {ours_mb / plain_mb:>6.2f} "
            f"{script_s:>9.2f} {ours_s / script_s:>11.2f}"
        )


if __name__ == "__main__":
    main()
