"""The load stage in real Snakemake runs: two prompt variants of tiny-llava share one server with
their predict jobs; each variant's perf job measures its ladder on that server (the model loads
once), writes its JSON and per-request parquet, and adds nothing to any prediction journal; a
changed ``perf`` block re-runs the perf jobs alone."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import jobs_by_wildcard, make_workdir, snakemake, write_runs
from tests.integration.test_shared_server import loads_under
from vlmhyperbench.perf.result import RECORD_COLUMNS, PerfResult

pytestmark = pytest.mark.slow

TASK = "demo_field_vqa"
VARIANTS = ["tiny-llava@system=plain", "tiny-llava@system=terse"]


def _block(requests: int) -> dict:
    return {
        "models": ["tiny-llava"],
        "tasks": [TASK],
        "limit": 3,
        "sweep": {"tasks.prompt.system": {"plain": "Read the page.", "terse": "Value only."}},
        "perf": {
            "concurrency": [1, 2],
            "rates": [3.0],
            "requests": requests,
            "slo": {"e2e_ms": 60000},
        },
    }


def _journal_bytes(workdir: Path) -> dict[str, bytes]:
    journals = workdir.glob("results/.journal/**/*.jsonl")
    return {str(path.relative_to(workdir)): path.read_bytes() for path in journals}


def _check_result(workdir: Path, model: str, requests: int) -> None:
    folder = workdir / "results" / "perf" / model
    result = PerfResult.model_validate_json((folder / f"{TASK}.json").read_text(encoding="utf-8"))
    assert (result.model, result.task, result.served_model) == (model, TASK, "tiny-llava")
    assert result.samples == 3 and result.settings.requests == requests
    assert "cores" in result.hardware.label and result.hardware.cpu_count >= 1
    closed, opened = result.ladders  # closed loop (concurrency), then open loop (rates)
    assert (closed.kind, opened.kind) == ("concurrency", "rate")
    assert closed.levels[0].level == 1 and [level.level for level in opened.levels] == [3.0]
    for ladder in result.ladders:
        for level in ladder.levels:  # a 60 s SLO: every level meets it
            assert level.meets_slo and level.requests == requests and level.errors == 0
            assert level.request_throughput > 0
            assert level.goodput == pytest.approx(level.request_throughput)
            assert level.ttft_ms.p95 <= level.e2e_ms.p95 and level.e2e_ms.p50 > 0
        assert ladder.best_throughput == max(level.request_throughput for level in ladder.levels)
    records = pd.read_parquet(folder / f"{TASK}.parquet")
    assert list(records.columns) == list(RECORD_COLUMNS)
    assert set(records["ladder"]) == {"concurrency", "rate"}
    measured = records[records["phase"] == "measured"]
    levels = sum(len(ladder.levels) for ladder in result.ladders)
    assert len(measured) == requests * levels and measured["error"].isna().all()
    assert set(records["phase"]) >= {"warmup", "measured"}
    journal = workdir / "results" / ".journal" / model / f"{TASK}.jsonl"
    answered = {json.loads(line).get("id") for line in journal.read_text().splitlines()[1:]}
    assert set(records["sample_id"]) == answered  # the task's own 3 samples, cycled


def test_perf_jobs_measure_on_the_shared_server_and_leave_the_journals_alone(
    tmp_path: Path,
) -> None:
    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava"], tasks=[TASK])
    write_runs(workdir, _block(requests=4))
    result = snakemake(workdir)
    assert jobs_by_wildcard(result.stdout + result.stderr, "perf_", "model") == dict.fromkeys(
        VARIANTS, 1
    )
    assert loads_under(workdir / "logs") == {"tiny-llava": 1}  # predictions and load: one server
    for model in VARIANTS:
        _check_result(workdir, model, requests=4)
        predictions = workdir / "results" / "predictions" / model / f"{TASK}.jsonl"
        assert len(predictions.read_text(encoding="utf-8").splitlines()) == 3
    journals = _journal_bytes(workdir)
    for text in journals.values():  # a header line, then one record per sample sent
        assert len(text.decode().splitlines()) == 1 + 3
    variants = json.loads((workdir / "results" / "variants.json").read_text(encoding="utf-8"))
    assert variants["perf"] == [{"model": m, "task": TASK} for m in VARIANTS]

    # A changed perf block re-runs the perf jobs (and the report), no prediction.
    write_runs(workdir, _block(requests=5))
    dry = snakemake(workdir, "-n")
    assert jobs_by_wildcard(dry.stdout, "predict_", "model") == {}
    assert jobs_by_wildcard(dry.stdout, "perf_", "model") == dict.fromkeys(VARIANTS, 1)
    snakemake(workdir)
    for model in VARIANTS:
        _check_result(workdir, model, requests=5)
    assert _journal_bytes(workdir) == journals  # the load added no line to any journal
