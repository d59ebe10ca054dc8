"""The report's "Judge metrics" section: α and κ between two judges and each against human
labels equal the hand-computed values (the 10-sample fixture of test_stats_agreement.py), the
invalid rate is shown for every judge, the drift warning appears exactly when a judge's served
model changes, "—" for a judge without a price, escaping, the LaTeX table, and no section
without judge metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.synthetic_results import (
    JUDGE_A,
    JUDGE_METRIC,
    JUDGE_UNTRUSTED,
    add_judge_results,
    write_synthetic_results,
)
from vlmhyperbench.config.schema import SelfHostedCost
from vlmhyperbench.reporting.build import build_report
from vlmhyperbench.reporting.judges import Served, cost_row, judge_sections
from vlmhyperbench.reporting.results import load_results

TINY = {"models": 2, "tasks": 1, "metrics": 2, "samples": 6}


def judged_run(root: Path, served: dict | None = None) -> Path:
    return add_judge_results(write_synthetic_results(root / "results", **TINY), served=served)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return judged_run(tmp_path_factory.mktemp("judges"))


@pytest.fixture(scope="module")
def section(results: Path) -> dict:
    sections, warnings = judge_sections(load_results(results))
    assert warnings == []
    assert [s["name"] for s in sections] == [JUDGE_METRIC]
    return sections[0]


@pytest.fixture(scope="module")
def page(results: Path) -> str:
    out = results.parent / "report"
    build_report(results, out, n_boot=100)
    return (out / "index.html").read_text(encoding="utf-8")


def judges_part(page: str) -> str:
    start = page.index('<section id="judges">')
    return page[start : page.index("</section>\n</section>", start)]


def test_agreement_between_the_judges_is_the_hand_computed_alpha_and_kappa(section) -> None:
    # Pooled over both models, rows 0-9 are the fixture (the untrusted judge has no verdict on
    # rows 10 and 11): κ = (0.8 − 0.48) / (1 − 0.48) = 8/13; α = 1 − 19·4/200 = 0.62.
    found = section["tasks"][0]["agreement"]
    assert found["level"] == "nominal"
    assert found["alpha"] == pytest.approx(0.62) and found["alpha_n"] == 10
    [pair] = found["pairs"]
    assert {pair["judge_a"], pair["judge_b"]} == {JUDGE_A, JUDGE_UNTRUSTED}
    assert pair["kappa"] == pytest.approx(8 / 13) and pair["n"] == 10


def test_agreement_with_human_labels_and_the_confusion_matrix(section) -> None:
    task = section["tasks"][0]
    assert task["n_labels"] == 10 and task["unreadable_labels"] == 1  # "maybe"
    human = {h["judge"]: h for h in task["human"]}
    # judge-a on the 9 readable labels: human 0 → judge 0,0,1,1; human 1 → judge 1 ×5.
    # p_o = 7/9, p_e = (4/9)(2/9) + (5/9)(7/9) = 43/81, κ = (63 − 43) / (81 − 43) = 10/19.
    a = human[JUDGE_A]
    assert a["n"] == 9 and a["accuracy"] == pytest.approx(7 / 9)
    assert a["kappa"] == pytest.approx(10 / 19)
    assert a["labels"] == ["incorrect", "correct"]
    assert [row["counts"] for row in a["matrix"]] == [[2, 2], [0, 5]]
    b = human[JUDGE_UNTRUSTED]  # agrees with every label it can be compared with
    assert (b["n"], b["kappa"], b["accuracy"]) == (8, 1.0, 1.0)


def test_each_judge_per_model_with_its_invalid_rate(section) -> None:
    rows = {(r["judge"], r["model"]): r for r in section["tasks"][0]["rows"]}
    assert len(rows) == 4  # every judge, every model: the invalid rate is never hidden
    bad = rows[(JUDGE_UNTRUSTED, "model-01")]
    assert (bad["judged"], bad["samples"], bad["invalid"], bad["errors"]) == (6, 6, 1, 1)
    assert bad["invalid_rate"] == pytest.approx(1 / 6)
    assert bad["mean"] == 0.0  # over its 4 verdicts
    good = rows[(JUDGE_A, "model-00")]
    assert (good["invalid_rate"], good["mean"]) == (0.0, 1.0)
    assert good["value"] == pytest.approx(5 / 6)  # the panel: mean of the two verdicts


def test_tokens_and_cost_and_a_dash_without_price(section) -> None:
    costs = {c["judge"]: c for c in section["costs"]}
    # 12 lines × (100, 10) tokens at $1 / $2 per 1M: 0.0012 + 0.00024.
    assert costs[JUDGE_A]["prompt_tokens"] == 1200 and costs[JUDGE_A]["completion_tokens"] == 120
    assert costs[JUDGE_A]["usd"] == pytest.approx(0.00144)
    assert costs[JUDGE_A]["usd_text"] == "$0.00144"
    # the untrusted judge's error line has no usage; it has no price: "—", never 0
    assert costs[JUDGE_UNTRUSTED]["prompt_tokens"] == 1100
    assert costs[JUDGE_UNTRUSTED]["usd"] is None and costs[JUDGE_UNTRUSTED]["usd_text"] == "—"


def test_a_self_hosted_judge_shows_tokens_only() -> None:
    row = cost_row("j", SelfHostedCost(usd_per_hour=2.0), Served(prompt_tokens=5, lines=1))
    assert row["usd"] is None and row["usd_text"] == "—"
    assert "needs a load test" in row["formula"] and row["prompt_tokens"] == 5


def test_the_page_shows_the_section_escaped(page: str) -> None:
    part = judges_part(page)
    assert "<h2>Judge metrics</h2>" in part and '<a href="#judges">' in page
    assert re.search(r'class="alpha">0\.620</b> \(n = 10\)', part)
    assert 'class="kappa">0.615</td><td>10</td>' in part
    assert 'class="kappa">0.526</td><td>77.8%</td><td>9</td>' in part
    assert "16.7% <small>(1)</small>" in part and "0.0% <small>(0)</small>" in part
    assert '<td class="gap">—</td>' in part  # the untrusted judge's cost
    assert "evil&lt;script&gt;judge" in part and "<script" not in page
    assert "changed within the run" not in part


def test_a_judge_whose_served_model_changed_is_warned(tmp_path: Path) -> None:
    results = judged_run(tmp_path, served={(JUDGE_A, "model-01"): "org/judge-a-8b<b>"})
    out = tmp_path / "report"
    report = build_report(results, out, n_boot=100)
    part = judges_part((out / "index.html").read_text(encoding="utf-8"))
    warning = re.search(r'<p class="warning drift">(.*?)</p>', part, re.S)
    assert warning is not None
    assert "changed within the run" in warning[1] and JUDGE_A in warning[1]
    assert "org/judge-a-7b, org/judge-a-8b&lt;b&gt;" in warning[1]
    assert len(re.findall('class="warning drift"', part)) == 1  # not the steady judge
    assert any("changed within the run" in w for w in report.warnings)


def test_a_judge_served_otherwise_than_in_the_baseline_is_warned_and_provenance_says(
    tmp_path: Path,
) -> None:
    served_now = {(JUDGE_A, m): "org/judge-a-8b" for m in ("model-00", "model-01")}
    results = judged_run(tmp_path / "now", served=served_now)
    baseline = judged_run(tmp_path / "before")
    out = tmp_path / "report"
    report = build_report(results, out, baseline_dir=baseline, n_boot=100)
    part = judges_part((out / "index.html").read_text(encoding="utf-8"))
    (warning,) = re.findall(r'<p class="warning drift baseline-drift">(.*?)</p>', part, re.S)
    assert JUDGE_A in warning and "org/judge-a-8b" in warning and "org/judge-a-7b" in warning
    assert "changed within the run" not in part  # steady within each run
    assert any("the baseline run's as org/judge-a-7b" in w for w in report.warnings)
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["judges"][JUDGE_METRIC][JUDGE_A] == {
        "served_models": ["org/judge-a-8b"],
        "system_fingerprints": ["fp_1"],
    }
    same = build_report(baseline, tmp_path / "same", baseline_dir=baseline, n_boot=100)
    assert not any("baseline run's" in w for w in same.warnings)  # no change, no warning


def test_the_latex_table(results: Path, page: str) -> None:
    text = (results.parent / "report" / "tables" / f"judges_{JUDGE_METRIC}.tex").read_text()
    assert r"\begin{tabular}{lllrrrrr}" in text
    assert r"$\alpha$ (nominal) = 0.620 (n = 10)" in text and "= 0.615 (n = 10)" in text
    assert r"16.7\%" in text and "judged\\_ok" in text


def test_a_missing_judgements_file_is_a_warning(tmp_path: Path) -> None:
    results = judged_run(tmp_path)
    (results / "judgements" / JUDGE_METRIC / JUDGE_A / "model-00" / "task_00.jsonl").unlink()
    sections, warnings = judge_sections(load_results(results))
    assert any("model-00/task_00.jsonl: missing" in w for w in warnings)
    assert {c["judge"]: c["lines"] for c in sections[0]["costs"]}[JUDGE_A] == 6


def test_no_section_without_judge_metrics(tmp_path: Path) -> None:
    results = write_synthetic_results(tmp_path / "results", **TINY)
    build_report(results, tmp_path / "report", n_boot=100)
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert 'id="judges"' not in page and "Judge metrics" not in page
    assert not list((tmp_path / "report" / "tables").glob("judges_*"))
    document = json.loads((judged_run(tmp_path / "j") / "variants.json").read_text())
    assert JUDGE_METRIC in document["judge_metrics"]


def test_the_section_is_deterministic(results: Path, page: str, tmp_path: Path) -> None:
    build_report(results, tmp_path / "again", n_boot=100)
    assert (tmp_path / "again" / "index.html").read_text(encoding="utf-8") == page
