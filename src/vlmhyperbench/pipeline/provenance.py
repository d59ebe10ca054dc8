"""What made a prediction file: code, packages, hardware, engine, model, data, prompt, seeds.

The predict job writes one record per (model, task) beside its predictions, at
``results/provenance/{model}/{task}.json``, so the report stays a function of ``results/``.
Everything here is best effort: a fact that cannot be found is ``"unknown"``, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from vlmhyperbench.config import Experiment
from vlmhyperbench.config.schema import HubSource, LocalModelSource, S3ModelSource, TinySource
from vlmhyperbench.runtime.io import atomic_write_json, file_sha256

log = logging.getLogger("vlmhyperbench.pipeline.provenance")
UNKNOWN = "unknown"
PROVENANCE_DIR = "provenance"
SCHEMA_VERSION = 1
PACKAGES = (
    "vlmhyperbench",
    "vlmhyperbench-wrapper",
    "snakemake",
    "numpy",
    "pandas",
    "pyarrow",
    "openai",
    "httpx",
    "torch",
    "transformers",
    "vllm",
    "sglang",
    "pillow",
)
# Files that identify a model folder's content without hashing the weights themselves.
MODEL_INDEX_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "chat_template.json",
)


def provenance_path(results_dir: str | Path, model: str, task: str) -> Path:
    return Path(results_dir) / PROVENANCE_DIR / model / f"{task}.json"


def _run(command: list[str], cwd: Path | None = None) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(repo: Path) -> dict[str, Any]:
    """The project's git revision and whether the work tree differs from it."""
    revision = _run(["git", "rev-parse", "HEAD"], cwd=repo)
    if revision is None:
        return {"revision": UNKNOWN, "dirty": UNKNOWN}
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo)
    return {"revision": revision, "dirty": UNKNOWN if status is None else bool(status)}


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the named distributions (absent ones are left out)."""
    versions = {}
    for name in sorted(set(names)):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or UNKNOWN


def gpus() -> list[dict[str, str]]:
    """GPU names, driver and CUDA version from ``nvidia-smi`` (empty without one)."""
    out = _run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    )
    if not out:
        return []
    cuda = UNKNOWN
    banner = _run(["nvidia-smi"]) or ""
    if "CUDA Version:" in banner:
        cuda = banner.split("CUDA Version:", 1)[1].split()[0]
    rows = []
    for line in out.splitlines():
        name, driver, memory = ([*(p.strip() for p in line.split(",")), UNKNOWN, UNKNOWN])[:3]
        rows.append({"name": name, "driver": driver, "memory": memory, "cuda": cuda})
    return rows


def environment() -> dict[str, Any]:
    """The job's interpreter, packages and machine."""
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "packages": package_versions(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "gpus": gpus(),
    }


def model_content_hash(folder: Path) -> str:
    """sha256 over the folder's config/index files (name + content), not the weights."""
    digest = hashlib.sha256()
    found = False
    for name in MODEL_INDEX_FILES:
        path = folder / name
        if path.is_file():
            found = True
            digest.update(name.encode() + b"\0" + file_sha256(path).encode() + b"\0")
    return digest.hexdigest() if found else UNKNOWN


def model_record(experiment: Experiment, model_name: str, model_path: str | None) -> dict:
    entry = experiment.registry.models[model_name]
    source = entry.source
    record: dict[str, Any] = {
        "name": entry.name,
        "family": entry.family,
        "backend": entry.backend,
        "engine_args": entry.engine_args.model_dump(mode="json"),
        "generation": entry.generation.model_dump(mode="json"),
        "packages": list(entry.packages),
        "container": entry.container,
        "source": source.model_dump(mode="json"),
        "endpoint": None if entry.endpoint is None else entry.endpoint.described(),
    }
    if isinstance(source, HubSource):
        record["hub_id"], record["revision"] = source.id, source.revision
    folder = None
    if model_path:
        folder = Path(model_path)
    elif isinstance(source, LocalModelSource):
        folder = Path(source.path).expanduser()
    if folder is not None and folder.is_dir():
        record["path"] = str(folder)
        record["content_sha256"] = model_content_hash(folder)
    elif isinstance(source, TinySource | S3ModelSource | LocalModelSource):
        record["content_sha256"] = UNKNOWN
    return record


def dataset_record(experiment: Experiment, task_name: str, manifest_path: Path) -> dict:
    dataset = experiment.registry.tasks[task_name].dataset
    entry = experiment.registry.datasets[dataset]
    info_path = manifest_path.parent / "dataset.json"
    info: dict[str, Any] = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
    files = info.get("files") if isinstance(info.get("files"), dict) else {}
    images = sorted((k, v) for k, v in files.items() if k != manifest_path.name)
    return {
        "name": dataset,
        "version": str(info.get("version", entry.version)),
        "manifest_sha256": file_sha256(manifest_path) if manifest_path.is_file() else UNKNOWN,
        "images_sha256": hashlib.sha256(json.dumps(images).encode()).hexdigest()
        if images
        else UNKNOWN,
        "n_files": len(files),
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def predict_record(
    experiment: Experiment,
    *,
    model_name: str,
    task_name: str,
    manifest_path: Path,
    prompt_fingerprint: str,
    predict_fingerprint: str,
    started: datetime,
    ended: datetime,
    model_path: str | None = None,
    repo: Path | None = None,
) -> dict[str, Any]:
    """The provenance of one predict job (see the module docstring)."""
    task = experiment.registry.tasks[task_name]
    model = experiment.registry.models[model_name]
    generation = (task.generation or model.generation).model_dump(mode="json")
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model_record(experiment, model_name, model_path),
        "task": {
            "name": task_name,
            "kind": task.kind,
            "prompt_fingerprint": prompt_fingerprint,
            "predict_fingerprint": predict_fingerprint,
        },
        "dataset": dataset_record(experiment, task_name, manifest_path),
        "generation": generation,
        "seeds": {
            "generation": generation.get("seed"),
            "scoring_bootstrap": experiment.config.scoring.seed,
        },
        "code": git_state(repo or Path(__file__).resolve().parent),
        "environment": environment(),
        "started": _iso(started),
        "ended": _iso(ended),
        "wall_s": round((ended - started).total_seconds(), 3),
    }


def results_dir_of(predictions_path: Path) -> Path:
    """``results/`` from ``results/predictions/{model}/{task}.jsonl``."""
    return predictions_path.parent.parent.parent


@contextmanager
def record_predict_job(
    experiment: Experiment,
    *,
    model_name: str,
    task_name: str,
    manifest_path: Path,
    predictions_path: Path,
    predict_fingerprint: str,
    model_path: str | None = None,
) -> Iterator[None]:
    """Time the job in the ``with`` block; when it succeeds, write its provenance record.

    A failure to gather or write the record is logged, never raised: provenance must not
    cost a finished run."""
    started = datetime.now(UTC)
    yield
    ended = datetime.now(UTC)
    path = provenance_path(results_dir_of(predictions_path), model_name, task_name)
    try:
        from vlmhyperbench.inference.prompts import TaskPrompts

        registry = experiment.registry
        prompts = TaskPrompts.load(registry.tasks[task_name], registry.path_of("tasks", task_name))
        record = predict_record(
            experiment,
            model_name=model_name,
            task_name=task_name,
            manifest_path=manifest_path,
            prompt_fingerprint=prompts.fingerprint(),
            predict_fingerprint=predict_fingerprint,
            started=started,
            ended=ended,
            model_path=model_path,
        )
        atomic_write_json(path, record)
    except Exception:
        log.exception("could not write the provenance record %s", path)
