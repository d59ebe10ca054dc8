"""The report's "MWS-Vision-Bench" section: Overall is the official rule on the category means
(and equals get_score_ru on the stored official runs), its CI resamples pages jointly across
the five categories (a hand bootstrap gives the same interval), "—" for what a model did not
run, the placement on the published table only for validation runs, escaping, the LaTeX table,
and no section for a run without the benchmark."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import pdflatex
from tests.synthetic_results import write_synthetic_results
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.metrics.aggregate import aggregate
from vlmhyperbench.metrics.loader import load_metric
from vlmhyperbench.metrics.mws.overall import overall
from vlmhyperbench.metrics.scoring import build_score_frame, write_score_parquet
from vlmhyperbench.reporting.build import build_report
from vlmhyperbench.reporting.mws_vision import CATEGORIES, mws_vision_section
from vlmhyperbench.reporting.published_leaderboard import place, read_leaderboard
from vlmhyperbench.reporting.results import load_results
from vlmhyperbench.reporting.summary import build_summary, write_summary
from vlmhyperbench.runtime.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL = ROOT / "tests" / "fixtures" / "mws" / "official_scores.json"
METRICS = [c.metric for c in CATEGORIES]
HOSTILE = '<script>alert("mws")</script> & \\textbf{x}_%$'
N_BOOT = 400
PLACED = re.compile(
    r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]: (between|level with|above every|below every) .+ "
    r"on the 2026-07-26 validation table"
)


# --- a results folder of score files, as the scoring stage writes them ------------------------


def category_frame(
    metric: str, pages: dict[str, list[float]], subset: str = "validation"
) -> pd.DataFrame:
    """Per-question scores of one category: ``pages`` maps each page to its questions' scores."""
    rows = [
        {"id": f"{metric}-{page}-{k}", "value": value, "doc_id": page}
        for page, values in pages.items()
        for k, value in enumerate(values)
    ]
    frame = pd.DataFrame(rows)
    frame["error"] = None
    frame["subset"] = subset
    return frame


def write_run(root: Path, run: dict[str, dict[str, pd.DataFrame]]) -> Path:
    """``results/`` with a score parquet, JSON and summary row per (model, category); the
    task is named after its metric, as the registry's mws_* tasks are."""
    paths = []
    for model, categories in run.items():
        for metric, frame in categories.items():
            base = root / "scores" / model / metric / metric
            base.parent.mkdir(parents=True, exist_ok=True)
            write_score_parquet(frame, base.with_suffix(".parquet"))
            stats = aggregate(frame, group_columns=("subset",), n_boot=200, seed=0)
            score = {
                "metric": metric,
                "model": model,
                "task": metric,
                "higher_is_better": True,
                "n": len(frame),
                "n_errors": 0,
                "error_rate": 0.0,
                "overall": stats["overall"],
                "groups": stats["groups"],
            }
            atomic_write_json(base.with_suffix(".json"), score)
            paths.append(base.with_suffix(".json"))
    write_summary(build_summary(paths), root / "summary.parquet", root / "summary.csv")
    return root


def five(seed: int, subset: str = "validation", pages: int = 6) -> dict[str, pd.DataFrame]:
    """All five categories on ``pages`` pages, 1–3 questions a page, scores that differ."""
    rng = np.random.default_rng(seed)
    return {
        metric: category_frame(
            metric,
            {
                f"page-{p}": rng.uniform(0, 1, size=rng.integers(1, 4)).round(3).tolist()
                for p in range(pages)
            },
            subset,
        )
        for metric in METRICS
    }


def section_of(results: Path, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    section, warnings = mws_vision_section(load_results(results), n_boot=n_boot, seed=seed)
    assert warnings == []
    assert section is not None
    return section


def rows_by_model(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["model"]: row for row in section["rows"]}


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VLM with all five categories, Tesseract with OCR only, a model without VQA, one on
    the private test split, and a model with a hostile name."""
    root = tmp_path_factory.mktemp("mws") / "results"
    ocr_only = {"mws_ocr": five(5)["mws_ocr"]}
    return write_run(
        root,
        {
            "vlm": five(1),
            "tesseract-rus": ocr_only,
            "no-vqa": {m: f for m, f in five(2).items() if m != "mws_vqa"},
            "on-test": five(3, subset="test"),
            HOSTILE: five(4),
        },
    )


# --- Overall and its CI ------------------------------------------------------------------------


def test_overall_is_the_official_rule_on_the_category_means(mixed_run: Path) -> None:
    row = rows_by_model(section_of(mixed_run))["vlm"]
    means = {metric: cell["value"] for metric, cell in row["cells"].items()}
    assert row["overall"]["value"] == overall(means)
    # each category mean is the plain mean of its questions' scores
    for metric, frame in five(1).items():
        assert means[metric] == pytest.approx(frame["value"].mean(), abs=1e-12)
    assert row["overall"]["value"] == pytest.approx(
        np.mean([frame["value"].mean() for frame in five(1).values()]), abs=1e-12
    )
    low, high = row["overall"]["ci_low"], row["overall"]["ci_high"]
    assert low < row["overall"]["value"] < high
    assert row["questions"] == sum(len(f) for f in five(1).values()) and row["pages"] == 6


def hand_bootstrap(frames: dict[str, pd.DataFrame], n_boot: int, seed: int) -> np.ndarray:
    """Overall's 95% interval by drawing pages one resample at a time: the same pages for
    every category, each category's mean over the drawn pages' questions."""
    pages = sorted({f"d:{p}" for frame in frames.values() for p in frame["doc_id"]})
    index = np.random.default_rng(seed).integers(0, len(pages), size=(n_boot, len(pages)))
    by_page = [
        {f"d:{p}": group["value"].tolist() for p, group in frame.groupby("doc_id")}
        for frame in frames.values()
    ]
    replicates = []
    for drawn in index:
        means = []
        for category in by_page:
            values = [v for k in drawn for v in category.get(pages[k], [])]
            means.append(np.mean(values) if values else np.nan)
        replicates.append(np.mean(means))
    replicates = np.array(replicates)
    return np.quantile(replicates[~np.isnan(replicates)], [0.025, 0.975])


def test_the_ci_is_a_joint_page_bootstrap_as_by_hand(tmp_path: Path) -> None:
    # Three pages; not every category has a question on every page (resamples in which a
    # category draws none are left out, by hand too).
    frames = {
        "mws_ocr": category_frame("mws_ocr", {"a": [0.9], "b": [0.2], "c": [0.5]}),
        "mws_markdown": category_frame("mws_markdown", {"a": [0.7, 0.6], "c": [0.1]}),
        "mws_grounding": category_frame("mws_grounding", {"b": [0.0, 1.0, 0.3]}),
        "mws_kie": category_frame("mws_kie", {"a": [1.0], "b": [0.4], "c": [0.8, 0.2]}),
        "mws_vqa": category_frame("mws_vqa", {"c": [1.0], "a": [0.0]}),
    }
    results = write_run(tmp_path / "results", {"m": frames})
    for seed in (0, 7):
        row = section_of(results, n_boot=300, seed=seed)["rows"][0]
        expected = hand_bootstrap(frames, 300, seed)
        assert [row["overall"]["ci_low"], row["overall"]["ci_high"]] == pytest.approx(
            expected, abs=1e-12
        )


def test_pages_that_differ_widen_the_ci_and_pages_are_the_unit(tmp_path: Path) -> None:
    def run(pages: dict[str, list[float]]) -> dict[str, pd.DataFrame]:
        return {metric: category_frame(metric, pages) for metric in METRICS}

    equal = {f"p{k}": [0.0, 1.0, 0.5, 0.5] for k in range(6)}  # every page alike
    differ = {f"p{k}": [float(k % 2)] * 4 for k in range(6)}  # a page all right or all wrong
    one_per_page = {f"p{k}-{j}": [float(k % 2)] for k in range(6) for j in range(4)}
    results = write_run(
        tmp_path / "results",
        {"equal": run(equal), "differ": run(differ), "one-per-page": run(one_per_page)},
    )
    rows = rows_by_model(section_of(results))
    width = {m: r["overall"]["ci_high"] - r["overall"]["ci_low"] for m, r in rows.items()}
    assert {r["overall"]["value"] for r in rows.values()} == {0.5}
    assert width["equal"] == pytest.approx(0.0, abs=1e-12)
    # the same 24 scores: drawn as 6 pages the interval is wider than as 24 independent ones
    assert width["differ"] > width["one-per-page"] > 0.1


def test_a_missing_category_is_a_dash_never_zero_nor_a_partial_overall(mixed_run: Path) -> None:
    rows = rows_by_model(section_of(mixed_run))
    tesseract = rows["tesseract-rus"]
    assert tesseract["overall"] is None and tesseract["categories"] == ["Full-page OCR"]
    assert [m for m, c in tesseract["cells"].items() if c is None] == METRICS[1:]
    no_vqa = rows["no-vqa"]
    assert no_vqa["overall"] is None and len(no_vqa["categories"]) == 4
    assert no_vqa["cells"]["mws_vqa"] is None and no_vqa["cells"]["mws_kie"] is not None


def test_gaps_are_warnings_and_leave_no_false_number(tmp_path: Path) -> None:
    frames = five(8)
    results = write_run(tmp_path / "results", {"m": frames, "twice": five(9)})
    (results / "scores" / "m" / "mws_kie" / "mws_kie.parquet").unlink()
    # a second task scored by mws_ocr for one model: which one counts is ambiguous
    extra = write_run(tmp_path / "extra", {"twice": {"mws_ocr": five(10)["mws_ocr"]}})
    shutil.copytree(extra / "scores" / "twice" / "mws_ocr", results / "scores" / "twice" / "ocr2")
    summary = pd.read_parquet(results / "summary.parquet")
    added = pd.read_parquet(extra / "summary.parquet").assign(task="ocr2")
    write_summary(pd.concat([summary, added]), results / "summary.parquet", results / "summary.csv")
    section, warnings = mws_vision_section(load_results(results), n_boot=100, seed=0)
    rows = rows_by_model(section)
    # no per-question KIE scores: Overall from the category means, without a CI
    assert rows["m"]["overall"]["value"] == overall(
        {m: c["value"] for m, c in rows["m"]["cells"].items()}
    )
    assert rows["m"]["overall"]["ci_low"] is None
    assert rows["m"]["placements"][0].startswith("Overall 0.")
    assert "[" not in rows["m"]["placements"][0].split(":")[0]
    # OCR from two tasks: left out, so no Overall
    assert rows["twice"]["cells"]["mws_ocr"] is None and rows["twice"]["overall"] is None
    assert any("m lacks the per-question scores of 1 of its 5" in w for w in warnings)
    assert any(
        "twice has Full-page OCR (mws_ocr) from 2 tasks (mws_ocr, ocr2)" in w for w in warnings
    )
    again, _ = mws_vision_section(load_results(results), n_boot=100, seed=0)
    assert again == section  # seeded: the same numbers on every build


# --- the placement on the published table ------------------------------------------------------


def test_the_placement_sentence(mixed_run: Path) -> None:
    rows = rows_by_model(section_of(mixed_run))
    board = read_leaderboard()
    vlm = rows["vlm"]
    entry = vlm["overall"]
    assert vlm["split"] == "validation" and vlm["not_placed"] is None
    placed = place(board, entry["value"], (entry["ci_low"], entry["ci_high"]))
    assert vlm["placements"] == [f"Overall {placed.text}"]
    assert PLACED.fullmatch(placed.text), placed.text
    # without Overall: each category it has, in that category's column
    [ocr] = rows["tesseract-rus"]["placements"]
    assert ocr.startswith("ocr ") and PLACED.fullmatch(ocr.removeprefix("ocr ")), ocr
    assert len(rows["no-vqa"]["placements"]) == 4
    # a private-test run is not placed, and says why
    test_run = rows["on-test"]
    assert test_run["split"] == "test" and test_run["placements"] == []
    assert "test score is not comparable with the validation table" in test_run["not_placed"]


def test_a_run_of_unknown_split_is_not_placed(tmp_path: Path) -> None:
    frames = five(6)
    frames["mws_vqa"]["subset"] = "test"  # one category from another split
    results = write_run(tmp_path / "results", {"mixed": frames})
    row = section_of(results)["rows"][0]
    assert row["split"] is None and row["placements"] == []
    assert "unknown or mixed" in row["not_placed"]


# --- the page and the LaTeX table --------------------------------------------------------------


@pytest.fixture(scope="module")
def report(mixed_run: Path) -> Path:
    out = mixed_run.parent / "report"
    build_report(mixed_run, out, n_boot=200)
    return out


def mws_part(page: str) -> str:
    start = page.index('<section id="mws-vision">')
    return page[start : page.index("</section>", start)]


def test_the_page_shows_the_section_after_the_overview(report: Path) -> None:
    page = (report / "index.html").read_text(encoding="utf-8")
    assert '<a href="#mws-vision">MWS-Vision-Bench</a>' in page
    assert page.index('id="overview"') < page.index('id="mws-vision"') < page.index('id="task-')
    part = mws_part(page)
    tesseract = next(line for line in part.splitlines() if line.startswith("<tr><th>tesseract"))
    assert tesseract.count('<td class="gap">—</td>') == 4
    assert "— <small>(1 of 5 categories)</small>" in tesseract
    assert "0.000" not in tesseract
    assert "A private-test number is not comparable with a validation one" in part
    assert "<b>tesseract-rus</b> (no Overall: 1 of 5 categories, Full-page OCR):\nocr 0." in part
    assert "<b>vlm</b>:\nOverall 0." in part
    assert "on the 2026-07-26 validation table" in part
    assert "<b>on-test</b>:\nnot placed: it ran on the test split" in part


def test_a_hostile_model_name_is_escaped(report: Path) -> None:
    part = mws_part((report / "index.html").read_text(encoding="utf-8"))
    assert "<script>" not in part
    assert "&lt;script&gt;alert(&#34;mws&#34;)&lt;/script&gt; &amp; \\textbf{x}_%$" in part
    latex = (report / "tables" / "mws_vision.tex").read_text(encoding="utf-8")
    assert r"<script>alert(\"mws\")" not in latex
    assert r"\textbackslash{}textbf\{x\}\_\%\$" in latex


def test_the_latex_table(report: Path, tmp_path: Path) -> None:
    latex = (report / "tables" / "mws_vision.tex").read_text(encoding="utf-8")
    lines = latex.splitlines()
    assert r"\begin{tabular}{lrrrrrr}" in lines
    assert (
        "Model & Full-page OCR & Document parsing & Text grounding & "
        r"Key information extraction & Reasoning VQA & Overall \\"
    ) in lines
    tesseract = next(line for line in lines if line.startswith("tesseract-rus & "))
    cells = tesseract.removesuffix(r" \\").split(" & ")
    assert cells[2:6] == ["--"] * 4 and cells[6] == r"-- {\scriptsize(1 of 5)}"
    assert re.fullmatch(
        r"(\\textbf\{)?0\.\d{3}\}? \{\\scriptsize\[0\.\d\d, [01]\.\d\d\]\}", cells[1]
    )
    if shutil.which("pdflatex") is None:
        return
    done = pdflatex(latex, tmp_path, "mws")
    assert done.returncode == 0, done.stdout[-2000:]


def test_no_section_without_the_benchmark(tmp_path: Path) -> None:
    results = write_synthetic_results(tmp_path / "results", models=2, tasks=1, samples=8)
    assert mws_vision_section(load_results(results), n_boot=10, seed=0) == (None, [])
    build_report(results, tmp_path / "report", n_boot=50)
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "mws-vision" not in page and "MWS-Vision-Bench" not in page
    assert not (tmp_path / "report" / "tables" / "mws_vision.tex").exists()


# --- against the official get_score_ru -------------------------------------------------------


def official_run(root: Path, official: dict[str, Any], index: int) -> Path:
    """The stored official run's items scored by our registry metrics into ``results/``."""
    by_id = {pair["id"]: pair for pair in official["pairs"]}
    paths = []
    for metric in METRICS:
        items = [by_id[i] for i in official["runs"][index]["ids"] if by_id[i]["metric"] == metric]
        if not items:
            continue
        entry = yaml.safe_load((ROOT / "config" / "metrics" / f"{metric}.yaml").read_text())
        loaded = load_metric(entry["implementation"])
        samples = [
            Sample(
                id=item["id"],
                answers=[a if isinstance(a, str) else json.dumps(a) for a in item["answers"]]
                or [""],
                question_type=item["type"],
                subset="validation",
                meta={"mws": {"type": item["type"], "answers": item["answers"]}},
            )
            for item in items
        ]
        predictions = {
            item["id"]: {"id": item["id"], "prediction": item["prediction"]} for item in items
        }
        frame = build_score_frame(predictions, samples, loaded, entry.get("params", {}))
        paths.append(_write_scored(root, f"run-{index}", metric, frame))
    write_summary(build_summary(paths), root / "summary.parquet", root / "summary.csv")
    return root


def _write_scored(root: Path, model: str, metric: str, frame: pd.DataFrame) -> Path:
    base = root / "scores" / model / metric / metric
    base.parent.mkdir(parents=True, exist_ok=True)
    write_score_parquet(frame, base.with_suffix(".parquet"))
    stats = aggregate(frame, group_columns=("subset",), n_boot=100, seed=0)
    score = {"metric": metric, "model": model, "task": metric, "higher_is_better": True,
             "n": len(frame), "overall": stats["overall"], "groups": stats["groups"]}  # fmt: skip
    atomic_write_json(base.with_suffix(".json"), score)
    return base.with_suffix(".json")


@pytest.fixture(scope="module")
def official() -> dict[str, Any]:
    return json.loads(OFFICIAL.read_text(encoding="utf-8"))


def test_overall_equals_get_score_ru_on_the_official_run(official, tmp_path: Path) -> None:
    run = official["runs"][0]
    assert run["name"] == "all five categories"
    [row] = section_of(official_run(tmp_path / "results", official, 0), n_boot=200)["rows"]
    assert row["overall"]["value"] == pytest.approx(run["overall"], abs=1e-9)
    assert row["overall"]["ci_low"] <= row["overall"]["value"] <= row["overall"]["ci_high"]
    [placement] = row["placements"]
    assert PLACED.fullmatch(placement.removeprefix("Overall ")), placement


@pytest.mark.parametrize("index", [1, 2])
def test_a_partial_official_run_shows_its_categories_and_no_overall(
    official, tmp_path: Path, index: int
) -> None:
    """get_score_ru averages the categories a run has (0.545 for three, the OCR mean for
    OCR alone); the section shows those category means and no Overall."""
    run = official["runs"][index]
    [row] = section_of(official_run(tmp_path / "results", official, index))["rows"]
    shown = {m: c["value"] for m, c in row["cells"].items() if c is not None}
    assert row["overall"] is None and len(row["categories"]) == len(shown) < 5
    assert overall(shown) == pytest.approx(run["overall"], abs=1e-9)
