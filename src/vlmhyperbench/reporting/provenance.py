"""The report's view of provenance: per (model, task) the facts each predict job recorded, and
``provenance.json`` (the run's dates, revisions and every job's record); a fact no record
holds reads "unknown"."""

from __future__ import annotations

from typing import Any

from vlmhyperbench.pipeline.provenance import UNKNOWN
from vlmhyperbench.reporting.results import Results


def _run_dates(results: Results) -> tuple[str, str]:
    starts = sorted(str(r.get("started")) for r in results.provenance.values() if r.get("started"))
    ends = sorted(str(r.get("ended")) for r in results.provenance.values() if r.get("ended"))
    return (starts[0] if starts else UNKNOWN, ends[-1] if ends else UNKNOWN)


def _get(record: dict[str, Any] | None, *path: str) -> Any:
    value: Any = record
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return UNKNOWN
        value = value[key]
    return UNKNOWN if value is None or value == "" else value


def provenance_rows(results: Results) -> list[dict[str, Any]]:
    rows = []
    pairs = sorted({(r.model, r.task) for r in results.overall.itertuples()})
    for model, task in pairs:
        record = results.provenance.get((model, task))
        gpus = _get(record, "environment", "gpus")
        gpu_text = (
            ", ".join(
                f"{g.get('name')} (driver {g.get('driver')}, CUDA {g.get('cuda')})" for g in gpus
            )
            if isinstance(gpus, list) and gpus
            else ("none" if isinstance(gpus, list) else UNKNOWN)
        )
        model_id = _get(record, "model", "hub_id")
        if model_id == UNKNOWN:
            model_id = _get(record, "model", "path")
        rows.append(
            {
                "model": model,
                "task": task,
                "recorded": record is not None,
                "fields": [
                    ("git revision", _get(record, "code", "revision")),
                    ("work tree dirty", _get(record, "code", "dirty")),
                    ("python", _get(record, "environment", "python")),
                    ("packages", _packages(_get(record, "environment", "packages"))),
                    ("platform", _get(record, "environment", "platform")),
                    ("cpu", _get(record, "environment", "cpu")),
                    ("gpus", gpu_text),
                    ("backend", _get(record, "model", "backend")),
                    ("engine args", _compact(_get(record, "model", "engine_args"))),
                    ("model", model_id),
                    ("model revision", _get(record, "model", "revision")),
                    ("model content sha256", _get(record, "model", "content_sha256")),
                    ("dataset", _get(record, "dataset", "name")),
                    ("dataset version", _get(record, "dataset", "version")),
                    ("manifest sha256", _get(record, "dataset", "manifest_sha256")),
                    ("images sha256", _get(record, "dataset", "images_sha256")),
                    ("prompt fingerprint", _get(record, "task", "prompt_fingerprint")),
                    ("generation", _compact(_get(record, "generation"))),
                    ("seeds", _compact(_get(record, "seeds"))),
                    ("started", _get(record, "started")),
                    ("ended", _get(record, "ended")),
                    ("wall, s", _get(record, "wall_s")),
                ],
            }
        )
    return rows


def _packages(value: Any) -> str:
    if not isinstance(value, dict):
        return UNKNOWN
    return ", ".join(f"{k} {v}" for k, v in sorted(value.items()))


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()) if v not in (None, [], {}))
    return str(value)


def provenance_document(results: Results) -> dict[str, Any]:
    started, ended = _run_dates(results)
    pairs = sorted({(r.model, r.task) for r in results.overall.itertuples()})
    revisions = sorted({str(_get(results.provenance.get(p), "code", "revision")) for p in pairs})
    return {
        "run": {
            "models": results.models(),
            "tasks": results.tasks(),
            "started": started,
            "ended": ended,
            "git_revisions": revisions,
        },
        "jobs": {
            f"{model}/{task}": results.provenance.get((model, task), UNKNOWN)
            for model, task in pairs
        },
    }
