"""Planning cost: ``snakemake -n`` of the workflow vs a plain Snakefile with the same jobs.

Two studies, generated in a temp dir from the repo's registries. ``--study paper`` (the
default): 20 models x 25 tasks x 20 metrics (~10.5k jobs) and fractions of it (``--sizes``),
copies of the tiny model, the field-VQA task and three text metrics. ``--study sweep`` (issue
25): one run block sweeping tiny-llava over 10 labelled system prompts x 10 values of a second
setting (100 variants) on ``--tasks`` copies of the field-VQA task with its three metrics; the
second setting is ``max_tokens`` (``prompts``: all sent per request, one serve job) or the
engine's ``torch_threads`` (``engine``: a server per value, 10 serve jobs and model builds).

Every arm dry-runs the same DAG (dataset, model builds, the serve jobs, predict per (model or
variant, task) in one group with its server's serve job, score per (model, task, metric),
the variants job, summary, a report on the summary, variants.json, the score tables and the
predictions); the jobs per kind of rule are compared and the script stops if they differ. The
plain Snakefile has one generic rule per stage (in the sweep study a predict rule per server),
constant strings, no input functions and ``shell:`` bodies - the least Snakemake itself can
cost for that DAG; the goal is ours <= 1.5x its time and peak memory. Ours has one rule per
server for serve, one per model or variant for predict and one ``score`` rule with a
``{metric}`` wildcard, whose params (the job's ``--spec`` and fingerprint) are input functions.
A third arm is the same plain Snakefile with ``script:`` bodies, as our predict, score,
summarize and report rules have: Snakemake reads a script rule's source once per job while
planning, a cost of its own. Arms are timed in alternating rounds (best wall and CPU time of
``--rounds``, highest peak); CPU time (user + system of the child) suffers less from a busy
machine than wall time; peak memory is the child's max RSS (``os.wait4``). ``--also DIR`` adds
an arm: another checkout's workflow with its ``src`` first on ``PYTHONPATH`` (a fix measured
beside the code it changes).

    .venv/bin/python benchmarks/planning.py              # ~10 min on 2 busy cores
    .venv/bin/python benchmarks/planning.py --sizes 1/8 --rounds 1 --profile prof.out
    .venv/bin/python benchmarks/planning.py --study sweep --rounds 5    # ~5 min
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import yaml

REPO = Path(__file__).resolve().parents[1]

# (models, tasks) per size; metrics per task stay 20, so the job count scales with the pairs.
SIZES = {"1/8": (5, 12), "1/4": (10, 12), "1/2": (10, 25), "1": (20, 25)}
METRICS = 20
BASE_METRICS = ["exact_match", "anls", "cer"]

# The sweep study: one run block, SWEEP_MODEL over 10 labelled system prompts x 10 values of a
# second setting (100 variants): per request (one server) or an engine setting (10 servers).
SWEEP_MODEL = "tiny-llava"
SWEEP_SIDE = 10
SWEEP_START = 2  # the values: 2..11 (tiny-llava's own torch_threads is 1, the task's max_tokens 24)
SWEEPS = {
    "prompts": ("tasks.generation.max_tokens", "max_tokens"),
    "engine": ("models.engine_args.torch_threads", "torch_threads"),
}

PLAIN_HEAD = """\
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


rule variants:
    output:
        variants="results/variants.json",
    localrule: True
    {action}


rule serve:
    input:
        model=ancient("models/tiny/{{model}}"),
    output:
        server=service("results/.servers/{{model}}.json"),
    {action}
"""

# The paper study: a serve job per model, so one generic predict rule names its server by
# wildcard.
PLAIN_PREDICT = """
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
"""

# The sweep study: variants share servers, so a predict rule per server, its variants (when
# there are several servers) as the wildcard's constraint.
PLAIN_PREDICT_SERVER = """
rule predict_s{index:02d}:
    input:
        manifest="data/demo_docs_vqa/manifest.jsonl",
        model="models/tiny/{server}",
        server=ancient("results/.servers/{server}.json"),
    output:
        predictions="results/predictions/{{model}}/{{task}}.jsonl",{constraint}
    threads: 0
    params:
        fingerprint="0123456789abcdef",
    {action}
"""

PLAIN_TAIL = """
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
        variants="results/variants.json",
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


SNAKEMAKE = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--quiet", "rules"]

#: A plain arm's predict rules, given their body.
Predict = Callable[[str], str]


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds of the child
    mb: float  # peak RSS, MiB


def write_yaml(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(payload, allow_unicode=True, sort_keys=False), encoding="utf-8")


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def plain_snakefiles(
    root: Path, models: list[str], tasks: list[str], metrics: list[str], predict: Predict
) -> None:
    """The plain arms' Snakefiles (``predict``: their predict rules with a given body)."""
    for arm, action in ACTIONS.items():
        names = {"models": models, "tasks": tasks, "metrics": metrics, "action": action}
        text = PLAIN_HEAD.format(**names) + predict(action) + PLAIN_TAIL.format(**names)
        (root / arm).mkdir()
        (root / arm / "noop.py").write_text("", encoding="utf-8")
        (root / arm / "Snakefile").write_text(text, encoding="utf-8")


def copy_registry(root: Path, n_tasks: int, metrics: list[str]) -> list[str]:
    """The registries of the repo in ``root/config``, with tasks t01.. (copies of the field-VQA
    task, each with its own user prompt) scored by ``metrics``."""
    shutil.copytree(REPO / "config", root / "config")
    registry = root / "config"
    task = read_yaml(registry / "tasks" / "demo_field_vqa.yaml")
    tasks = [f"t{i:02d}" for i in range(1, n_tasks + 1)]
    for i, name in enumerate(tasks):
        prompt = {**task["prompt"], "user": f"{task['prompt']['user']} ({i})"}
        write_yaml(
            registry / "tasks" / f"{name}.yaml", {**task, "prompt": prompt, "metrics": metrics}
        )
    return tasks


def write_config(root: Path, **matrix: object) -> None:
    write_yaml(
        root / "config" / "config.yaml",
        {
            "name": "planning",
            "registry_dir": "config",
            **matrix,
            "overrides": {"datasets": {"demo_docs_vqa": {"source": {"params": {"per_class": 1}}}}},
        },
    )


def make_study(root: Path, n_models: int, n_tasks: int) -> None:
    """The paper study: models m01.. (tiny-llava, seeds 0..), tasks t01.., metrics x01.."""
    metrics = [f"x{i:02d}" for i in range(1, METRICS + 1)]
    tasks = copy_registry(root, n_tasks, metrics)
    registry = root / "config"
    model = read_yaml(registry / "models" / "tiny-llava.yaml")
    models = [f"m{i:02d}" for i in range(1, n_models + 1)]
    for i, name in enumerate(models):
        write_yaml(
            registry / "models" / f"{name}.yaml",
            {**model, "source": {**model["source"], "seed": i}},
        )
    for i, name in enumerate(metrics):
        base = read_yaml(registry / "metrics" / f"{BASE_METRICS[i % len(BASE_METRICS)]}.yaml")
        write_yaml(registry / "metrics" / f"{name}.yaml", base)
    write_config(root, models=models, tasks=tasks)
    plain_snakefiles(
        root, models, tasks, metrics, lambda action: PLAIN_PREDICT.format(action=action)
    )


def sweep_grid(sweep: str) -> tuple[dict[str, object], dict[str, list[str]]]:
    """The block's ``sweep:`` and the variants it makes, by server, named as the workflow names
    them (``model@key=label,…``, keys sorted; no value equals the registry entry's)."""
    system = read_yaml(REPO / "config" / "tasks" / "demo_field_vqa.yaml")["prompt"]["system"]
    prompts = {f"p{i:02d}": f"{system} (вариант {i})" for i in range(1, SWEEP_SIDE + 1)}
    values = list(range(SWEEP_START, SWEEP_START + SWEEP_SIDE))
    path, key = SWEEPS[sweep]
    axes = {"tasks.prompt.system": prompts, path: values}
    variants = {
        value: [
            f"{SWEEP_MODEL}@{','.join(sorted([f'{key}={value}', f'system={label}']))}"
            for label in prompts
        ]
        for value in values
    }
    if path.startswith("tasks."):  # sent per request: one server
        return axes, {SWEEP_MODEL: [name for value in values for name in variants[value]]}
    # a server per value, named after the setting it depends on
    return axes, {f"{SWEEP_MODEL}@{key}={value}": variants[value] for value in values}


def make_sweep_study(root: Path, sweep: str, n_tasks: int) -> None:
    """One run block: tiny-llava over a 10 x 10 sweep on tasks t01.. with the field-VQA task's
    metrics; plain arms with a predict rule per server."""
    metrics = read_yaml(REPO / "config" / "tasks" / "demo_field_vqa.yaml")["metrics"]
    tasks = copy_registry(root, n_tasks, metrics)
    axes, servers = sweep_grid(sweep)
    write_config(root, runs=[{"models": [SWEEP_MODEL], "tasks": tasks, "sweep": axes}])
    rules = []
    for index, (server, names) in enumerate(servers.items(), 1):
        constraint = ""
        if len(servers) > 1:
            pattern = "|".join(re.escape(name) for name in names)
            constraint = f"\n    wildcard_constraints:\n        model={pattern!r},"
        rules.append({"index": index, "server": server, "constraint": constraint})

    def predict(action: str) -> str:
        return "".join(PLAIN_PREDICT_SERVER.format(**rule, action=action) for rule in rules)

    variants = [name for names in servers.values() for name in names]
    plain_snakefiles(root, variants, tasks, metrics, predict)


def dry_run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[Run, str]:
    """One ``snakemake -n`` child: wall and CPU seconds, peak RSS (MiB), and its output."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = process.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-4000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(elapsed, cpu, usage.ru_maxrss / 1024), output


def job_counts(output: str) -> dict[str, int]:
    """Jobs per kind of rule from the first "Job stats" table: ``predict_*`` (ours: one rule
    per model or variant; the plain sweep arms: one per server) as ``predict``, ``serve_*`` as
    ``serve``; with the ``total``."""
    lines = output.splitlines()
    if "Job stats:" not in lines:
        raise SystemExit(f"no job stats in the output:\n{output[-4000:]}")
    counts: dict[str, int] = {}
    for line in lines[lines.index("Job stats:") + 3 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        kind = parts[0].split("_")[0] if parts[0].startswith(("predict_", "serve_")) else parts[0]
        counts[kind] = counts.get(kind, 0) + int(parts[1])
    return counts


def workflow_arm(root: Path, checkout: Path) -> tuple[list[str], Path, dict[str, str]]:
    """Dry-running a checkout's workflow in ``root``, with its ``src`` first on the path."""
    command = [*SNAKEMAKE, "--snakefile", str(checkout / "workflow" / "Snakefile")]
    path = os.pathsep.join(filter(None, [str(checkout / "src"), os.environ.get("PYTHONPATH")]))
    return [*command, "--directory", str(root)], root, {**os.environ, "PYTHONPATH": path}


def time_arms(root: Path, rounds: int, label: str, also: Path | None) -> tuple[dict, dict]:
    """Every arm's best wall and CPU seconds and highest peak MiB over alternating rounds, and
    its jobs per kind (the same in every arm, or it stops)."""
    arms = {"ours": workflow_arm(root, REPO)}
    if also:
        arms["also"] = workflow_arm(root, also)
    for arm in ACTIONS:
        arms[arm] = ([*SNAKEMAKE, "--snakefile", str(root / arm / "Snakefile")], root / arm, None)
    best = {arm: Run(float("inf"), float("inf"), 0.0) for arm in arms}
    jobs = {}
    for _ in range(rounds):
        for arm, (command, cwd, env) in arms.items():
            run, output = dry_run(command, cwd, env)
            jobs[arm] = job_counts(output)
            best[arm] = Run(
                min(best[arm].wall, run.wall),
                min(best[arm].cpu, run.cpu),
                max(best[arm].mb, run.mb),
            )
            print(
                f"  {label} {arm}: {run.wall:.2f} s, {run.cpu:.2f} s CPU, {run.mb:.0f} MiB",
                file=sys.stderr,
            )
    if any(counts != jobs["ours"] for counts in jobs.values()):
        raise SystemExit(f"job counts differ at {label}: {jobs}")
    return best, jobs["ours"]


def profile(root: Path, path: str) -> None:
    """The workflow arm once more, under cProfile into ``path``."""
    command, cwd, env = workflow_arm(root, REPO)
    profiled = [sys.executable, "-m", "cProfile", "-o", path, *command[1:]]
    subprocess.run(profiled, cwd=cwd, env=env, check=True, capture_output=True)


def print_rows(title: str, rows: list[tuple[str, dict, dict]]) -> None:
    print(
        f"{title:>8} {'jobs':>6} {'ours s':>7} {'plain s':>7} {'time x':>6} {'ours cpu':>8} "
        f"{'plain cpu':>9} {'cpu x':>5} {'ours MiB':>8} {'plain MiB':>9} {'mem x':>5} "
        f"{'script s':>8} {'vs script x':>11}"
    )
    for label, jobs, best in rows:
        ours, plain, script = best["ours"], best["plain"], best["plain-script"]
        print(
            f"{label:>8} {jobs['total']:>6} {ours.wall:>7.2f} {plain.wall:>7.2f} "
            f"{ours.wall / plain.wall:>6.2f} {ours.cpu:>8.2f} {plain.cpu:>9.2f} "
            f"{ours.cpu / plain.cpu:>5.2f} {ours.mb:>8.0f} {plain.mb:>9.0f} "
            f"{ours.mb / plain.mb:>5.2f} {script.wall:>8.2f} {ours.wall / script.wall:>11.2f}"
        )
        if "also" in best:
            also = best["also"]
            print(
                f"{'':>8} --also: {also.wall:.2f} s ({also.wall / plain.wall:.2f}x plain), "
                f"{also.cpu:.2f} s CPU ({also.cpu / plain.cpu:.2f}x), "
                f"{also.mb:.0f} MiB ({also.mb / plain.mb:.2f}x)"
            )
    for label, jobs, _ in rows:
        print(f"{label} jobs: " + ", ".join(f"{kind} {n}" for kind, n in jobs.items()))


def profile_path(profile: str, label: str, several: bool) -> str:
    """``--profile FILE`` as given, or with the study's label before its suffix when there are
    several (``prof-engine.out``)."""
    path = Path(profile).resolve()
    return str(path.with_name(f"{path.stem}-{label}{path.suffix}") if several else path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=["paper", "sweep"], default="paper")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--sweeps", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    parser.add_argument("--tasks", type=int, default=1, help="tasks of the sweep study")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", help="also run the workflow arm under cProfile into FILE")
    parser.add_argument(
        "--also", type=Path, help="one more arm: another checkout's workflow (and its src)"
    )
    args = parser.parse_args()
    labels = args.sizes if args.study == "paper" else args.sweeps
    rows = []
    for label in labels:
        with tempfile.TemporaryDirectory(prefix="vlmhb-planning-") as tmp:
            root = Path(tmp)
            if args.study == "paper":
                make_study(root, *SIZES[label])
            else:
                make_sweep_study(root, label, args.tasks)
            best, jobs = time_arms(root, args.rounds, label, args.also)
            if args.profile:
                profile(root, profile_path(args.profile, label, len(labels) > 1))
            name = str(Fraction(label)) if args.study == "paper" else label
            rows.append((name, jobs, best))
    print_rows("size" if args.study == "paper" else "sweep", rows)


if __name__ == "__main__":
    main()
