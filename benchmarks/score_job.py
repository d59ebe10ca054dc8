"""A score job's start-up: the whole job as Snakemake runs it vs a bare import of its libraries.

The score jobs of a finished run are run again (their outputs deleted, then ``snakemake --cores 1``
on exactly those files), and each job's wall time is read from Snakemake's own record of it
(``.snakemake/metadata``: from the job's start to its last output written - what Snakemake's
report shows as the job's runtime). Beside it, in alternating rounds: ``python -c "import
<libraries>"``, the third-party import statements at the top of the job's modules as they are
written (the metric's module and the scoring stage's: numpy, pandas, pyarrow.parquet, pydantic's
BaseModel for the manifest, rapidfuzz, ...), once per job, and ``python -c pass`` for the
interpreter alone. Prints the median job, the median bare import and their ratio (goal <= 1.5x),
per metric and overall, plus each round's medians so noise shows. With ``--workdir`` the jobs
are re-run in place (their outputs are replaced; the run's summary and report are then older
than its scores).

By default the run is made first in a temp folder: the demo's 30-sample tasks
(``demo_doc_class``, ``demo_field_extraction``) on ``tiny-llava`` (~1 min on 2 cores).
``--workdir`` measures the score jobs of a finished run instead (e.g. a whole demo:
``--tasks all``); ``--repo`` runs another checkout's workflow and library (e.g. the commit
before a change, from ``git worktree add``), so the same command measures before and after.

    .venv/bin/python benchmarks/score_job.py                     # ~2 min on 2 cores
    .venv/bin/python benchmarks/score_job.py --workdir DEMO_RUN --tasks all --rounds 3
    .venv/bin/python benchmarks/score_job.py --repo /tmp/before --workdir DEMO_RUN --tasks all
"""

from __future__ import annotations

import argparse
import ast
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TASKS = ["demo_doc_class", "demo_field_extraction"]  # the demo's 30-sample tasks
MODELS = ["tiny-llava"]
# The scoring stage's own modules: what every score job imports besides the metric's module.
STAGE_MODULES = ["vlmhyperbench.metrics.scoring", "vlmhyperbench.datasets.manifest"]


def snakemake(repo: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Snakemake on ``repo``'s workflow, with ``repo``'s library first on the path."""
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(repo / "workflow" / "Snakefile"),
        "--directory", str(workdir), *args,
    ]  # fmt: skip
    path = os.pathsep.join([str(repo / "src"), str(repo / "wrapper" / "src")])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{done.stderr[-6000:]}")
    return done


def make_run(repo: Path, workdir: Path, models: list[str], tasks: list[str]) -> None:
    """A finished run of ``models`` x ``tasks`` with the repo's registries."""
    shutil.copytree(repo / "config", workdir / "config")
    config_path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config.pop("runs", None)
    config.update(models=models, tasks=tasks)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    snakemake(repo, workdir, "--cores", "2")


def score_files(workdir: Path, models: list[str] | None, tasks: list[str] | None) -> list[Path]:
    """The aggregate JSON of every finished score job of the chosen models and tasks."""
    found = sorted((workdir / "results" / "scores").glob("*/*/*.json"))
    return [
        path
        for path in found
        if (models is None or path.parts[-3] in models)
        and (tasks is None or path.parts[-2] in tasks)
    ]


def module_file(repo: Path, module: str) -> Path | None:
    """Where ``module`` is in ``repo``'s library, or (a plugin) wherever Python finds it."""
    local = repo / "src" / Path(*module.split("."))
    for candidate in (local.with_suffix(".py"), local / "__init__.py"):
        if candidate.is_file():
            return candidate
    import importlib.util

    spec = importlib.util.find_spec(module)
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def third_party_imports(path: Path) -> set[str]:
    """The top-level import statements of ``path`` that import from outside the standard library
    and this project, as written (``from pydantic import BaseModel`` loads more of pydantic than
    ``import pydantic``, which is lazy)."""
    statements = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        roots = {module.split(".")[0] for module in modules}
        if not roots & ({"vlmhyperbench", "__future__"} | set(sys.stdlib_module_names)):
            statements.add(ast.unparse(node))
    return statements


def libraries(repo: Path, score_json: Path) -> tuple[str, ...]:
    """The third-party imports of a score job: its metric's module's and the stage's."""
    entry = json.loads(score_json.read_text(encoding="utf-8"))
    references = [entry["implementation"], entry.get("aggregate")]
    modules = list(STAGE_MODULES)
    for reference in filter(None, references):
        if ":" not in reference:  # an entry point's name: its target
            from vlmhyperbench.metrics.loader import import_path

            reference = import_path(reference)
        modules.append(reference.partition(":")[0])
    statements: set[str] = set()
    for module in modules:
        path = module_file(repo, module)
        if path is not None:
            statements |= third_party_imports(path)
    return tuple(sorted(statements))


def imported_modules(statements: tuple[str, ...]) -> str:
    return ", ".join(sorted({statement.split()[1] for statement in statements}))


def job_seconds(workdir: Path, score_json: Path) -> float:
    """Snakemake's record of the job that wrote ``score_json``: start to the output written."""
    key = base64.urlsafe_b64encode(str(score_json.relative_to(workdir)).encode()).decode()
    record = json.loads((workdir / ".snakemake" / "metadata" / key).read_text(encoding="utf-8"))
    return float(record["endtime"]) - float(record["starttime"])


def run_jobs(repo: Path, workdir: Path, files: list[Path]) -> list[float]:
    """Delete the jobs' outputs, run exactly those jobs one at a time, return their seconds."""
    for path in files:
        path.unlink()
        path.with_suffix(".parquet").unlink()
    snakemake(repo, workdir, "--cores", "1", *(str(p.relative_to(workdir)) for p in files))
    return [job_seconds(workdir, path) for path in files]


def bare_seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def measure(args: argparse.Namespace, workdir: Path) -> None:
    repo = args.repo.resolve()
    tasks = None if args.tasks == ["all"] else args.tasks
    files = score_files(workdir, args.models, tasks)
    if not files:
        raise SystemExit(f"no score files in {workdir}/results/scores for those models and tasks")
    libs = {path: libraries(repo, path) for path in files}
    jobs: dict[Path, list[float]] = {path: [] for path in files}
    bare: dict[Path, list[float]] = {path: [] for path in files}  # the job's libraries
    interpreter: list[float] = []
    for round_no in range(1, args.rounds + 1):
        for path, seconds in zip(files, run_jobs(repo, workdir, files), strict=True):
            jobs[path].append(seconds)
        for path in files:  # one bare import per job, so both arms see the machine alike
            bare[path].append(bare_seconds("\n".join(libs[path])))
        interpreter.append(bare_seconds("pass"))
        round_jobs = statistics.median(jobs[p][-1] for p in files)
        round_bare = statistics.median(bare[p][-1] for p in files)
        print(f"round {round_no}: median job {round_jobs:.3f} s, bare import {round_bare:.3f} s")
    report(files, libs, jobs, bare, interpreter)


def report(
    files: list[Path],
    libs: dict[Path, tuple[str, ...]],
    jobs: dict[Path, list[float]],
    bare: dict[Path, list[float]],
    interpreter: list[float],
) -> None:
    print(f"\n{len(files)} score jobs x {len(interpreter)} rounds; python -c pass: "
          f"{statistics.median(interpreter):.3f} s")  # fmt: skip
    print(f"{'metric':<22} {'jobs':>4} {'job s':>7} {'bare s':>7} {'ratio':>6}  bare imports")
    by_metric: dict[str, list[Path]] = {}
    for path in files:
        by_metric.setdefault(path.stem, []).append(path)
    for metric, paths in sorted(by_metric.items()):
        job = statistics.median(s for p in paths for s in jobs[p])
        imports = statistics.median(s for p in paths for s in bare[p])
        print(
            f"{metric:<22} {len(paths):>4} {job:>7.3f} {imports:>7.3f} {job / imports:>6.2f}  "
            + imported_modules(libs[paths[0]])
        )
    all_jobs = [s for p in files for s in jobs[p]]
    all_bare = [s for p in files for s in bare[p]]
    job, imports = statistics.median(all_jobs), statistics.median(all_bare)
    print(
        f"{'all':<22} {len(files):>4} {job:>7.3f} {imports:>7.3f} {job / imports:>6.2f}  "
        f"(jobs {min(all_jobs):.3f}-{max(all_jobs):.3f} s; goal ratio <= 1.5)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to measure")
    parser.add_argument("--workdir", type=Path, help="a finished run (default: make one)")
    parser.add_argument(
        "--models", nargs="+", help=f"default: {MODELS} when making the run, else all"
    )
    parser.add_argument("--tasks", nargs="+", default=TASKS, help="task names, or 'all'")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.workdir is not None:
        measure(args, args.workdir.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="vlmhb-score-job-") as tmp:
        models = args.models or MODELS
        tasks = TASKS if args.tasks == ["all"] else args.tasks
        make_run(args.repo.resolve(), Path(tmp), models, tasks)
        measure(args, Path(tmp))


if __name__ == "__main__":
    main()
