"""The ``perf`` stage for one (model or variant, task): load on the model's own server.

It runs in the serve job's group (``rules/inference.smk``), so it loads no model of its own. It
holds the server alone while it measures (:func:`~vlmhyperbench.inference.server.server_lock`:
predict jobs share the lock, a perf job takes it exclusively), so no prediction's latency and no
other load is mixed into its figures. It sends the task's own requests - the bodies the predict
stage sends (:func:`~vlmhyperbench.inference.runner.request_body`), real images and prompts -
cycled, never through the prediction journal.

Each ladder in the ``perf`` settings (closed-loop concurrency, open-loop rate) is searched for
the highest load that meets the SLO (:func:`~vlmhyperbench.perf.search.find_max_load`). A level
with failed requests is followed by a health check of the server: a server that stopped
answering fails the job (an infrastructure failure is not a load result); a live one that
refused or broke requests under load has them counted in the level's error rate.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from vlmhyperbench.config import Experiment
from vlmhyperbench.config.schema import PerfSettings
from vlmhyperbench.datasets.manifest import Sample, read_manifest
from vlmhyperbench.inference.launcher import health
from vlmhyperbench.inference.prompts import TaskPrompts
from vlmhyperbench.inference.runner import request_body
from vlmhyperbench.inference.server import server_lock, wait_for_server
from vlmhyperbench.perf.hardware import hardware
from vlmhyperbench.perf.loadgen import RequestRecord, closed_loop, open_loop
from vlmhyperbench.perf.result import (
    RECORD_COLUMNS,
    LadderKind,
    LadderResult,
    LevelResult,
    PerfResult,
)
from vlmhyperbench.perf.search import find_max_load, meets_slo
from vlmhyperbench.perf.stats import LevelStats, e2e_s, level_stats, tpot_s, ttft_s
from vlmhyperbench.pipeline.backend_specs import per_request_body
from vlmhyperbench.pipeline.fingerprints import effective_generation
from vlmhyperbench.pipeline.selection import select_samples
from vlmhyperbench.runtime.io import atomic_write

log = logging.getLogger("vlmhyperbench.perf")


class PerfAborted(RuntimeError):
    """The server stopped answering during the load: no result is written."""


def task_requests(
    experiment: Experiment, model_name: str, task_name: str, manifest_path: Path,
    served_model: str,
) -> tuple[list[Sample], list[dict[str, Any]]]:  # fmt: skip
    """The task's samples and the body each one sends (as the predict stage sends it)."""
    model = experiment.registry.models[model_name]
    task = experiment.registry.tasks[task_name]
    prompts = TaskPrompts.load(task, experiment.registry.path_of("tasks", task_name))
    samples = select_samples(task, read_manifest(manifest_path))
    if not samples:
        raise ValueError(f"{model_name}/{task_name}: the task selects no sample to send")
    generation = effective_generation(model, task)
    extra = per_request_body(model)
    dataset_dir = manifest_path.parent.resolve()
    bodies = [
        {**request_body(task, prompts, dataset_dir, s, generation, served_model)[0], **extra}
        for s in samples
    ]
    return samples, bodies


def warmup_of(settings: PerfSettings, kind: LadderKind, level: float) -> int:
    """The uncounted requests before a level: the settings', else enough to fill the level."""
    if settings.warmup is not None:
        return settings.warmup
    return max(2, math.ceil(level if kind == "concurrency" else 2 * level))


def record_rows(
    kind: LadderKind, level: float, records: Sequence[RequestRecord], sample_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The per-request parquet's rows of one level (times from its first request's start)."""
    origin = min(record.start for record in records)
    rows = []
    for r in records:
        ok = r.ok
        values = (
            kind, level, r.index, r.phase, sample_ids[r.index % len(sample_ids)], r.start - origin,
            None if r.end is None else r.end - origin, ttft_s(r) * 1000 if ok else None,
            (tpot_s(r) or math.nan) * 1000 if ok else None, e2e_s(r) * 1000 if ok else None,
            r.output_tokens, r.error,
        )  # fmt: skip
        rows.append(dict(zip(RECORD_COLUMNS, values, strict=True)))
    return rows


class LadderRun:
    """One ladder on a server: :meth:`search` measures its levels (:meth:`measure`), keeping
    every request's row (:attr:`rows`)."""

    def __init__(self, base_url: str, bodies: list[dict[str, Any]], sample_ids: list[str],
                 settings: PerfSettings, kind: LadderKind, label: str) -> None:  # fmt: skip
        self.base_url, self.bodies, self.sample_ids = base_url, bodies, sample_ids
        self.settings, self.kind, self.label = settings, kind, label
        self.rows: list[dict[str, Any]] = []

    def measure(self, level: float) -> LevelStats:
        settings, warmup = self.settings, warmup_of(self.settings, self.kind, level)
        if self.kind == "concurrency":
            load = closed_loop(self.base_url, self.bodies, int(level), settings.requests, warmup)
        else:
            load = open_loop(self.base_url, self.bodies, level, settings.requests, warmup,
                             seed=settings.seed)  # fmt: skip
        records = asyncio.run(load)
        stats = level_stats(records, level, settings.slo)
        if stats.errors:
            alive, detail = health(self.base_url)
            if not alive:
                raise PerfAborted(
                    f"{self.label}: the server stopped answering at {self.kind} {level:g} "
                    f"({stats.errors} of {stats.requests} requests failed; its /health: {detail})"
                )
        self.rows += record_rows(self.kind, level, records, self.sample_ids)
        self._log(stats)
        return stats

    def _log(self, stats: LevelStats) -> None:
        e2e = f"{stats.e2e_ms.at(self.settings.percentile):.0f}" if stats.e2e_ms else "-"
        met = "meets" if self.met(stats) else "misses"
        log.info(
            "%s: %s %g: %.2f requests/s, %.1f output tokens/s, p%d e2e %s ms, %d errors; %s "
            "the SLO", self.label, self.kind, stats.level, stats.request_throughput,
            stats.output_throughput, self.settings.percentile, e2e, stats.errors, met,
        )  # fmt: skip

    def met(self, stats: LevelStats) -> bool:
        return meets_slo(stats, self.settings.slo, self.settings.percentile,
                         self.settings.max_error_rate)  # fmt: skip

    def search(self, ladder: Sequence[float]) -> LadderResult:
        s = self.settings
        found = find_max_load(
            self.measure, ladder, s.slo, kind=self.kind, percentile=s.percentile,
            max_error_rate=s.max_error_rate, saturation=s.saturation,
        )  # fmt: skip
        levels = [LevelResult(**stats.model_dump(), meets_slo=self.met(stats))
                  for stats in found.levels]  # fmt: skip
        met = [level.request_throughput for level in levels if level.meets_slo]
        return LadderResult(kind=self.kind, best=found.best, reason=found.reason,
                            best_throughput=max(met) if met else None, levels=levels)  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_perf_job(
    experiment: Experiment, model_name: str, task_name: str, manifest_path: Path,
    server_path: Path, json_path: Path, records_path: Path, fingerprint: str,
) -> PerfResult:  # fmt: skip
    """Measure the pair's ladders on its server; write the JSON and the per-request parquet."""
    settings = experiment.perf[(model_name, task_name)]
    model = experiment.registry.models[model_name]
    started = _now()
    status = wait_for_server(server_path, model_name)
    served_model = status.get("model") or model.name
    samples, bodies = task_requests(experiment, model_name, task_name, manifest_path, served_model)
    label = f"{model_name}/{task_name}"
    log.info("%s: %d samples' requests, server at %s", label, len(samples), status["base_url"])
    ladders, rows = [], []
    with server_lock(server_path, exclusive=True, who=label):
        for kind, levels in (("concurrency", settings.concurrency), ("rate", settings.rates)):
            if levels:
                ladder = LadderRun(status["base_url"], bodies, [s.id for s in samples],
                                   settings, kind, label)  # fmt: skip
                ladders.append(ladder.search(levels))
                rows += ladder.rows
    result = PerfResult(
        model=model_name, task=task_name, served_model=served_model, backend=model.backend,
        samples=len(samples), hardware=hardware(status.get("gpus") or []), settings=settings,
        ladders=ladders, fingerprint=fingerprint, started_at=started, finished_at=_now(),
    )  # fmt: skip
    with atomic_write(records_path, "wb") as handle:
        pd.DataFrame(rows, columns=list(RECORD_COLUMNS)).to_parquet(handle, index=False)
    with atomic_write(json_path) as handle:
        handle.write(result.model_dump_json(indent=1))
    return result
