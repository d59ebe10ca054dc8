"""Shared test helpers: a small experiment in a temporary workdir, and real snakemake runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"

SMALL_DATASET = {"source": {"params": {"per_class": 1, "subsets": ["clean", "blur"]}}}


def make_workdir(
    root: Path,
    *,
    models: list[str] | None = None,
    tasks: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    inference: dict[str, Any] | None = None,
) -> Path:
    """A workdir with a copy of the repo's registries and a small experiment config."""
    workdir = root
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "config", workdir / "config", dirs_exist_ok=True)
    default_overrides = {
        "datasets": {"demo_docs_vqa": SMALL_DATASET, "demo_docs_classification": SMALL_DATASET},
    }
    config = {
        "name": "test",
        "registry_dir": "config",
        "models": models or ["tiny-llava", "tiny-idefics3"],
        "tasks": tasks or ["demo_field_vqa", "demo_doc_class"],
        "overrides": _merge(default_overrides, overrides or {}),
        "inference": {"concurrency": 4, "startup_timeout_s": 300, **(inference or {})},
        "scoring": {"bootstrap": 200, "seed": 0},
    }
    write_yaml(workdir / "config" / "config.yaml", config)
    return workdir


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def write_yaml(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(payload, allow_unicode=True, sort_keys=False), encoding="utf-8")


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_runs(workdir: Path, *blocks: dict[str, Any]) -> Path:
    """The workdir's config with these run blocks as its whole run matrix (no top-level
    models/tasks); returns the config's path."""
    path = workdir / "config" / "config.yaml"
    config = read_yaml(path)
    config.pop("models", None), config.pop("tasks", None)
    config["runs"] = list(blocks)
    write_yaml(path, config)
    return path


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The snakemake CLI on the repo's workflow in ``workdir``, 2 cores."""
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir), "--cores", "2", *args,
    ]  # fmt: skip


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    timeout: float = 900,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real snakemake CLI on the repo's workflow in ``workdir`` (``env`` replaces the
    environment)."""
    command = snakemake_command(workdir, *args)
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a snakemake run or dry run."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    try:
        start = next(
            i for i, line in enumerate(lines) if line.strip().startswith("job") and "count" in line
        )
    except StopIteration:
        return counts
    for line in lines[start + 2 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def jobs_by_wildcard(output: str, rule_prefix: str, wildcard: str) -> dict[str, int]:
    """Jobs per value of ``wildcard`` among the rules whose name starts with ``rule_prefix``, in
    a snakemake run's or dry run's job listing (e.g. predict jobs per model)."""
    counts: dict[str, int] = {}
    in_rule = False
    for line in output.splitlines():
        line = line.strip()
        if line.endswith(":") and line.split()[0] in ("rule", "localrule"):
            in_rule = line.split()[1].rstrip(":").startswith(rule_prefix)
        elif in_rule and line.startswith("wildcards:"):
            pairs = line.removeprefix("wildcards:").strip().split(", ")
            value = dict(pair.split("=", 1) for pair in pairs)[wildcard]
            counts[value] = counts.get(value, 0) + 1
            in_rule = False
    return counts


def score_jobs(output: str) -> dict[str, int]:
    """Score jobs per metric (one rule scores every metric)."""
    return jobs_by_wildcard(output, "score", "metric")


def latex_document(body: str) -> str:
    """A minimal document around a table, to compile it."""
    return (
        "\\documentclass{article}\n\\usepackage[T2A]{fontenc}\n\\usepackage[utf8]{inputenc}\n"
        "\\usepackage[russian,english]{babel}\n\\usepackage{booktabs}\n"
        "\\usepackage{graphicx}\n\\usepackage[landscape,margin=1cm]{geometry}\n"
        f"\\begin{{document}}\n\\resizebox{{\\linewidth}}{{!}}{{%\n{body}}}\n\\end{{document}}\n"
    )


def pdflatex(tex_body: str, workdir: Path, name: str) -> subprocess.CompletedProcess:
    """Compile a table (``tex_body``) in ``latex_document`` with Debian's texlive."""
    source = workdir / f"{name}.tex"
    source.write_text(latex_document(tex_body), encoding="utf-8")
    return subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", source.name],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
