"""The report's "Serving performance and cost" section: the cost formulas on known numbers, the
goodput table's best level, "—" (never 0) for a model without a cost in the data, the page and
the LaTeX, which perf files are read, escaping, and no section without perf data or a cost."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from tests.synthetic_results import (
    PERF_API,
    PERF_NO_COST,
    PERF_SELF_HOSTED,
    PERF_UNTRUSTED,
    SELF_HOSTED_LADDERS,
    add_perf_results,
    perf_document,
    write_synthetic_results,
)
from vlmhyperbench.config.schema import ApiCost, SelfHostedCost
from vlmhyperbench.perf.cost import api_cost, cost_per_1k_samples, self_hosted_cost, usd
from vlmhyperbench.perf.result import PerfResult
from vlmhyperbench.reporting.build import build_report
from vlmhyperbench.reporting.perf import perf_sections
from vlmhyperbench.reporting.results import load_results, read_predictions
from vlmhyperbench.runtime.io import atomic_write_json

SMALL = {"models": 3, "tasks": 2, "metrics": 2, "samples": 40}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_synthetic_results(tmp_path_factory.mktemp("perf") / "results", **SMALL)
    return add_perf_results(root)


@pytest.fixture(scope="module")
def report(results: Path) -> Path:
    out = results.parent / "report"
    built = build_report(results, out, n_boot=100)
    (out / "warnings.json").write_text(json.dumps(built.warnings), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def sections(results: Path) -> dict[str, dict]:
    parts, _ = perf_sections(load_results(results), [])
    return {part["name"]: part for part in parts}


def self_hosted_result() -> PerfResult:
    document = perf_document(PERF_SELF_HOSTED, "task_00", SELF_HOSTED_LADDERS)
    return PerfResult.model_validate_json(json.dumps(document))


# --- the formulas ------------------------------------------------------------------------------


def test_self_hosted_cost_is_taken_at_the_highest_throughput_that_met_the_slo() -> None:
    result = self_hosted_result()
    # 4.4 requests/s at concurrency 8 missed the SLO; 4.1 at 6 is the best that met it.
    assert result.best_throughput() == 4.1
    cost = cost_per_1k_samples(SelfHostedCost(usd_per_hour=2.0), result.best_throughput(), [], [])
    assert cost.usd_per_1k_samples == pytest.approx(1000 * 2.0 / (3600 * 4.1))  # 0.1355
    assert cost.basis == "self-hosted"
    assert cost.formula == "1000 × $2.00/h ÷ (3600 s/h × 4.10 req/s at the SLO) = $0.136"


def test_api_cost_is_the_mean_token_price_of_the_answered_samples() -> None:
    price = ApiCost(usd_per_1m_input_tokens=0.5, usd_per_1m_output_tokens=1.5)
    # The third sample has no usage: left out of the mean.
    cost = api_cost(price, [1000.0, 3000.0, math.nan], [100.0, 300.0, 7.0])
    per_sample = [(1000 * 0.5 + 100 * 1.5) / 1e6, (3000 * 0.5 + 300 * 1.5) / 1e6]
    assert cost.usd_per_1k_samples == pytest.approx(1000 * sum(per_sample) / 2)  # $1.30
    assert cost.formula.startswith("1000 × (2000.0 input tokens × $0.500 + 200.0 output tokens")
    assert cost.formula.endswith("= $1.30 (mean of 2 answered samples)")


def test_no_price_or_no_slo_meeting_load_is_no_cost_never_zero() -> None:
    none = cost_per_1k_samples(None, 4.1, [100.0], [10.0])
    assert none.usd_per_1k_samples is None and none.basis == "none"
    assert usd(none.usd_per_1k_samples) == "—"
    assert self_hosted_cost(2.0, None).usd_per_1k_samples is None
    unmeasured = self_hosted_cost(2.0, 3.0, measured=False)
    assert unmeasured.usd_per_1k_samples is None and "no perf result" in unmeasured.formula
    price = ApiCost(usd_per_1m_input_tokens=1.0, usd_per_1m_output_tokens=1.0)
    assert api_cost(price, [math.nan], [math.nan]).usd_per_1k_samples is None


def test_usage_tokens_come_from_the_line_usage_else_its_performance(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    lines = [
        {"id": "a", "error": None, "performance": {"prompt_tokens": 9, "completion_tokens": 9},
         "usage": {"prompt_tokens": 120, "completion_tokens": 30}},
        {"id": "b", "error": None, "performance": {"prompt_tokens": 80, "completion_tokens": 5}},
        {"id": "c", "error": "HTTP 500", "performance": None, "usage": None},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    frame, _ = read_predictions(path)
    assert frame["input_tokens"].tolist()[:2] == [120.0, 80.0]
    assert frame["output_tokens"].tolist()[:2] == [30.0, 5.0]
    assert math.isnan(frame["input_tokens"].iloc[2])


# --- the section's data ------------------------------------------------------------------------


def test_the_cost_data_of_each_model(results: Path, sections: dict[str, dict]) -> None:
    costs = {row["model"]: row for row in sections["task_00"]["costs"]}
    assert costs[PERF_SELF_HOSTED]["usd_per_1k_samples"] == pytest.approx(2000 / (3600 * 4.1))
    # The API model: no perf file; its cost from the tokens its answered samples used.
    lines = (results / "predictions" / PERF_API / "task_00.jsonl").read_text().splitlines()
    answered = [json.loads(line) for line in lines if json.loads(line)["error"] is None]
    mean_in = sum(line["usage"]["prompt_tokens"] for line in answered) / len(answered)
    expected = 1000 * (mean_in * 1.0 + 50 * 2.0) / 1e6
    assert costs[PERF_API]["usd_per_1k_samples"] == pytest.approx(expected)
    assert costs[PERF_API]["endpoint"] and costs[PERF_API]["basis"] == "api"
    for model in (PERF_NO_COST, PERF_UNTRUSTED):  # no cost: None and "—", never 0
        assert costs[model]["usd_per_1k_samples"] is None
        assert costs[model]["usd_text"] == "—" and costs[model]["pricing"] == "—"
    # A self-hosted model without a perf result on the task has no cost either.
    other = {row["model"]: row for row in sections["task_01"]["costs"]}
    assert other[PERF_SELF_HOSTED]["usd_per_1k_samples"] is None
    assert "no perf result" in other[PERF_SELF_HOSTED]["formula"]


def test_the_goodput_table_holds_the_highest_load_that_met_the_slo(
    sections: dict[str, dict],
) -> None:
    rows = {(r["model"], r["ladder"]): r for r in sections["task_00"]["goodput"]}
    closed = rows[(PERF_SELF_HOSTED, "concurrency")]
    assert closed["best"] == 6.0 and closed["best_text"] == "6"
    assert closed["requests_per_s"] == 4.1 and closed["reason"] == "bisected"
    assert closed["e2e_ms"] == 1900.0 and closed["ttft_ms"] == pytest.approx(570.0)
    assert closed["percentile"] == 95
    assert closed["slo"] == "p95 TTFT ≤ 500 ms, p95 e2e ≤ 2,000 ms; errors ≤ 0%"
    assert rows[(PERF_SELF_HOSTED, "rate")]["best_text"] == "2.00 req/s"
    failed = rows[(PERF_NO_COST, "concurrency")]
    assert failed["best"] is None and failed["requests_per_s"] is None
    assert failed["reason"] == "first_level_fails"
    # The curve: every level in ascending load, the bisection's 6 and 7 between 4 and 8.
    curve = next(
        c for c in sections["task_00"]["curves"]
        if c["model"] == PERF_SELF_HOSTED and c["ladder"] == "concurrency"
    )  # fmt: skip
    assert [p["level"] for p in curve["points"]] == [1, 2, 4, 6, 7, 8]
    assert [p["meets_slo"] for p in curve["points"]] == [True] * 4 + [False] * 2


def test_the_pareto_front_leaves_out_models_without_a_cost(sections: dict[str, dict]) -> None:
    task = sections["task_00"]
    assert sorted(p["model"] for p in task["pareto"]) == [PERF_SELF_HOSTED, PERF_API]
    assert task["left_out"] == [PERF_UNTRUSTED, PERF_NO_COST]
    # model-00 is cheaper, model-01 better on this data: both on the front.
    assert task["front"] == [PERF_SELF_HOSTED, PERF_API]


# --- the page and the files --------------------------------------------------------------------


def _cost_row(page: str, model: str) -> str:
    table = page[page.index('<table class="cost">') :]
    return re.search(rf"<tr><td>{re.escape(model)}</td>.*?</tr>", table).group(0)


def test_the_page_shows_the_section_with_a_dash_for_no_cost(report: Path) -> None:
    page = (report / "index.html").read_text(encoding="utf-8")
    assert '<section id="perf">' in page and "Serving performance and cost" in page
    assert "SLO: <b>p95 TTFT ≤ 500 ms, p95 e2e ≤ 2,000 ms; errors ≤ 0%</b>" in page
    no_cost = _cost_row(page, PERF_NO_COST)
    assert '<td class="gap">—</td>' in no_cost and "$" not in no_cost and "0.00" not in no_cost
    assert "1000 × $2.00/h ÷ (3600 s/h × 4.10 req/s at the SLO) = $0.136" in page
    assert "Hardware: <b>1× NVIDIA H100 80GB HBM3</b> (model-00, model-02)" in page


def test_untrusted_names_and_labels_are_escaped(report: Path) -> None:
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "evil&lt;script&gt;alert(1)" in page and "&lt;b&gt;1× NVIDIA" in page
    assert "<script" not in page and "<b><b>" not in page


def test_the_latex_tables_and_figures_are_written(report: Path) -> None:
    for name in ("perf_task_00", "cost_pareto_task_00", "cost_pareto_task_01"):
        for suffix in (".svg", ".pdf"):
            assert (report / "figures" / f"{name}{suffix}").stat().st_size > 1000
    assert not (report / "figures" / "perf_task_01.svg").exists()  # no perf result there
    goodput = (report / "tables" / "perf_task_00.tex").read_text(encoding="utf-8")
    assert "model-00 & concurrency & 6 & 4.10 & 4.10 & 570 & 95 & 1900 &" in goodput
    assert r"1$\times$ NVIDIA" in goodput and r"TTFT $\leq$ 500 ms" in goodput
    cost = (report / "tables" / "cost_task_00.tex").read_text(encoding="utf-8")
    no_cost = next(line for line in cost.splitlines() if line.startswith(f"{PERF_NO_COST} &"))
    assert no_cost.startswith(f"{PERF_NO_COST} & --- & --- &") and "0.00" not in no_cost
    assert r"= \$0.136" in cost
    assert not (report / "tables" / "perf_task_01.tex").exists()


def test_listed_files_are_read_missing_ones_named_and_others_ignored(report: Path) -> None:
    warnings = json.loads((report / "warnings.json").read_text(encoding="utf-8"))
    assert [w for w in warnings if w.startswith("perf/")] == [
        "perf/model-02/task_01.json: missing; serving performance of model-02 on task_01 not shown"
    ]  # perf/model-01/task_01.json is not listed: not read (it is not even a PerfResult)
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "perf/model-02/task_01.json: missing" in page


def test_no_section_without_perf_data_or_a_cost(tmp_path: Path) -> None:
    results = write_synthetic_results(tmp_path / "results", **SMALL)
    models = sorted(p.name for p in (results / "predictions").iterdir())
    variants = {m: {"group": m, "cost": None, "endpoint": False} for m in models}
    perf = [{"model": models[0], "task": "task_00"}]  # listed, but the job wrote nothing
    atomic_write_json(results / "variants.json", {"variants": variants, "perf": perf})
    built = build_report(results, tmp_path / "report", n_boot=50)
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert 'id="perf"' not in page and "Serving performance and cost" not in page
    assert 'href="#perf"' not in page and "section.perf" not in page
    assert not list((tmp_path / "report" / "tables").glob("perf_*"))
    assert not list((tmp_path / "report" / "tables").glob("cost_*"))
    assert not list((tmp_path / "report" / "figures").glob("*perf*"))
    assert "perf/model-00/task_00.json: missing" in " ".join(built.warnings)
