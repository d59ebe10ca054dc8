"""The report of a run with variants (``results/variants.json``): a 2×2 sweep of ``tess``
(psm decides quality, languages only latency) beside a plain model, from synthetic results.
Groups in every leaderboard, the Settings section's values and sentences, the sweep's LaTeX
table, the compared pairs, and a run without variants left as it was."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.helpers import pdflatex
from tests.synthetic_results import (
    LANGUAGES,
    PLAIN_MODEL,
    PSM,
    SWEEP_TASK,
    write_sweep_results,
    write_synthetic_results,
)
from vlmhyperbench.reporting.build import build_report
from vlmhyperbench.reporting.compare import compare_run
from vlmhyperbench.reporting.results import load_results
from vlmhyperbench.reporting.settings import (
    latency_table,
    settings_sections,
    variant_sentence,
)
from vlmhyperbench.reporting.variants import (
    Variant,
    Variants,
    axis_names,
    comparison_pairs,
    describe_pair,
    group_order,
    load_variants,
    run_pairs,
    sweep_grids,
)

BEST = "tess@languages=rus,psm=4"  # psm 4 is far better; rus is faster; ties go by name
GROUP = ["tess@languages=rus,psm=4", "tess@psm=4", "tess", "tess@languages=rus"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sweep_results(tmp_path_factory.mktemp("sweep") / "results")


@pytest.fixture(scope="module")
def report(results: Path) -> Path:
    out = results.parent / "report"
    built = build_report(results, out, n_boot=300)
    assert not [w for w in built.warnings if "variants" in w]
    return out


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- leaderboards ----------------------------------------------------------------------------


def test_leaderboard_md_puts_the_variants_under_their_group(report: Path) -> None:
    lines = (report / "leaderboard.md").read_text(encoding="utf-8").splitlines()
    task = lines[lines.index(f"## Task: {SWEEP_TASK}") :]
    assert task[2].startswith("| Group | Model | cer ↓ | exact_match ↑ | n |")
    rows = [line.split(" | ") for line in task[4 : task.index("", 4)]]
    # Ranked alone, plain-vlm (cer 0.22) would sit between psm 4 (0.08) and psm 6 (0.42).
    assert [r[1] for r in rows] == [*GROUP, PLAIN_MODEL]
    assert [r[0] for r in rows] == ["| tess", "| ", "| ", "| ", f"| {PLAIN_MODEL}"]
    overview = lines[: lines.index(f"## Task: {SWEEP_TASK}")]
    assert f"| Group | Model | {SWEEP_TASK} (cer ↓) |" in overview
    names = [
        line.split(" | ")[1] for line in overview if line.startswith("| ") and "---" not in line
    ]
    assert names[1:] == [PLAIN_MODEL, "tess", "tess@languages=rus", BEST, "tess@psm=4"]


def test_index_and_latex_leaderboards_group_the_variants(report: Path) -> None:
    page = (report / "index.html").read_text(encoding="utf-8")
    start = page.index("<tbody>", page.index("<h3>Leaderboard</h3>"))
    board = page[start : page.index("</tbody>", start)]
    assert board.count('<tr class="group">') == 1
    assert '<tr class="group"><th colspan="5">tess <small>4 variants</small></th></tr>' in board
    rows = re.findall(r"<tr(?: class=\"variant\")?><th>([^<]+)</th>", board)
    assert rows == [*GROUP, PLAIN_MODEL]
    latex = (report / "tables" / f"{SWEEP_TASK}_leaderboard.tex").read_text(encoding="utf-8")
    body = latex.split("\\midrule\n")[1].splitlines()
    assert body[0] == r"\multicolumn{4}{l}{\textit{tess}} \\"
    assert [line.split(" & ")[0] for line in body[1:6]] == [
        r"\quad languages=rus,psm=4",
        r"\quad psm=4",
        r"\quad tess",
        r"\quad languages=rus",
        PLAIN_MODEL,
    ]


# --- the Settings section --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sections(results: Path) -> list[dict]:
    loaded = load_results(results)
    variants, warnings = load_variants(results)
    assert warnings == [] and variants is not None
    pairs = run_pairs(variants, loaded.overall, {SWEEP_TASK: "cer"}, {SWEEP_TASK: False})
    comparisons = compare_run(loaded, n_boot=300, seed=0, pairs=pairs)
    latency = latency_table(loaded, variants, n_boot=300, seed=0)
    return settings_sections(loaded, SWEEP_TASK, variants, comparisons, latency, [])


def test_settings_table_holds_each_variants_metric_and_latency(
    results: Path, sections: list[dict]
) -> None:
    (grid,) = sections
    assert grid["group"] == "tess" and grid["axis_names"] == ["languages", "psm"]
    summary = pd.read_parquet(results / "summary.parquet")
    cer = summary[(summary["metric"] == "cer") & (summary["group_by"] == "overall")]
    cer = cer.set_index("model")
    by_psm = next(a for a in grid["axes"] if a["name"] == "psm")
    assert by_psm["series"] == ["languages rus", "languages rus+eng"]
    assert [row["value"] for row in by_psm["rows"]] == ["4", "6"]
    expected = [["tess@languages=rus,psm=4", "tess@psm=4"], ["tess@languages=rus", "tess"]]
    assert [[c["model"] for c in row["cells"]] for row in by_psm["rows"]] == expected
    for row in by_psm["rows"]:
        for cell in row["cells"]:
            assert cell["value"] == pytest.approx(cer.loc[cell["model"], "value"])
            assert cell["ci_low"] == pytest.approx(cer.loc[cell["model"], "ci_low"])
            lines = (results / "predictions" / cell["model"] / f"{SWEEP_TASK}.jsonl").read_text()
            latency = [json.loads(line)["performance"]["latency_ms"] for line in lines.splitlines()]
            assert cell["latency"] == pytest.approx(float(np.median(latency)))
            assert cell["latency_low"] <= cell["latency"] <= cell["latency_high"]
    # psm 4 beats psm 6 by far; rus is faster at the same quality.
    assert by_psm["rows"][0]["cells"][0]["value"] < by_psm["rows"][1]["cells"][0]["value"] - 0.2
    by_lang = next(a for a in grid["axes"] if a["name"] == "languages")
    rus, both = by_lang["rows"]
    assert rus["cells"][0]["value"] == both["cells"][0]["value"]
    assert rus["cells"][0]["latency"] < both["cells"][0]["latency"] - 50
    assert grid["best"]["model"] == BEST and grid["front"] == ["languages rus, psm 4"]


def test_sentences_say_psm_matters_and_languages_does_not(sections: list[dict]) -> None:
    sentences = sections[0]["sentences"]
    psm = [s for s in sentences if s["text"].startswith("psm 4 beats psm 6 (languages rus) by")]
    assert len(psm) == 1 and psm[0]["significant"]
    text = psm[0]["text"]
    gain, low, high = map(float, re.search(r"by (\S+) cer \[(\S+), (\S+)\]", text).groups())
    assert 0.2 < low <= gain <= high  # the gain in the better direction, CI around it
    assert re.search(r"p [<=] 0\.0\d\d, 0\.9× the latency$", text)
    # Variants that differ in languages alone answer alike: no sentence may claim a difference.
    languages = [s for s in sentences if "languages rus" in s["text"] and "psm" in s["text"]]
    one_setting = [
        s for s in languages if re.match(r"languages \S+ (vs|beats) languages", s["text"])
    ]
    assert len(one_setting) == 2
    assert all(
        not s["significant"] and "no significant difference" in s["text"] for s in one_setting
    )
    assert not any(re.match(r"languages [^,]+ beats", s["text"]) for s in sentences)


def test_a_sentence_reads_lower_is_better_gains_and_missing_latency() -> None:
    row = SimpleNamespace(
        higher_is_better=False,
        diff=-0.12,
        ci_low=-0.16,
        ci_high=-0.08,
        metric="CER",
        significant=True,
        p_holm=0.0004,
    )
    assert variant_sentence(row, "psm 4", "psm 6", "", 1.04) == (
        "psm 4 beats psm 6 by 0.120 CER [0.080, 0.160], p < 0.001, 1.0× the latency"
    )
    row.significant, row.p_holm, row.diff, row.ci_low, row.ci_high = False, 0.4, 0.0, -0.01, 0.0
    assert variant_sentence(row, "a", "b", "psm 4", math.nan) == (
        "a vs b (psm 4): no significant difference (0.000 CER [0.000, 0.010], p = 0.400)"
    )


def test_comparisons_csv_holds_the_chosen_variant_pairs(report: Path) -> None:
    comparisons = pd.read_csv(report / "comparisons.csv")
    for metric in ("cer", "exact_match"):
        rows = comparisons[comparisons["metric"] == metric]
        pairs = {frozenset(p) for p in zip(rows["model_a"], rows["model_b"], strict=True)}
        assert pairs == {
            # within the group: each against the best, each against the best of its lines
            frozenset({BEST, "tess@psm=4"}),
            frozenset({BEST, "tess@languages=rus"}),
            frozenset({BEST, "tess"}),
            frozenset({"tess@psm=4", "tess"}),
            frozenset({"tess@languages=rus", "tess"}),
            # across groups: the group's best only
            frozenset({BEST, PLAIN_MODEL}),
        }
    assert (comparisons["p_holm"] >= comparisons["p_value"]).all()
    page = (report / "index.html").read_text(encoding="utf-8")
    comparisons_part = page[page.index("<h3>Model comparisons") :]
    assert f"{BEST} beats {PLAIN_MODEL}" in comparisons_part
    assert "psm 4 beats psm 6" not in comparisons_part  # phrased once, in Settings


def test_the_sweep_latex_table_has_a_row_per_variant(report: Path, tmp_path: Path) -> None:
    latex = (report / "tables" / f"{SWEEP_TASK}_sweep_tess.tex").read_text(encoding="utf-8")
    lines = latex.splitlines()
    assert r"languages & psm & cer $\downarrow$ & p50 latency, ms \\" in lines
    rows = lines[lines.index(r"\midrule") + 1 : lines.index(r"\bottomrule")]
    assert [r.split(" & ")[:2] for r in rows] == [
        ["rus", "4"],
        ["rus", "6"],
        ["rus+eng", "4"],
        ["rus+eng", "6"],
    ]
    assert rows[0].split(" & ")[2].startswith(r"\textbf{0.0")  # psm 4: best (and tied) CER
    assert not rows[1].split(" & ")[2].startswith(r"\textbf")
    assert re.fullmatch(r"\d+ \{\\scriptsize\[\d+, \d+\]\} \\\\", rows[0].split(" & ")[3])
    if shutil.which("pdflatex") is None:
        return
    done = pdflatex(latex, tmp_path, "sweep")
    assert done.returncode == 0, done.stdout[-2000:]


def test_the_page_has_the_settings_section_and_escapes_labels(
    results: Path, report: Path, tmp_path: Path
) -> None:
    page = (report / "index.html").read_text(encoding="utf-8")
    assert '<h3 id="settings-demo_ocr">Settings</h3>' in page
    assert "<h4>tess: languages × psm (4 variants)</h4>" in page
    assert "Best on cer: <b>languages rus, psm 4</b>" in page
    assert {
        f"figures/{SWEEP_TASK}_settings_tess_{k}.svg" for k in ("psm", "languages", "pareto")
    } <= set(_hashes(report))
    spoiled = tmp_path / "results"
    shutil.copytree(results, spoiled)
    document = json.loads((spoiled / "variants.json").read_text(encoding="utf-8"))
    for entry in document["variants"].values():
        if entry["swept"].get(PSM) == "6":
            entry["swept"][PSM] = "<b>6</b>"
    (spoiled / "variants.json").write_text(json.dumps(document), encoding="utf-8")
    build_report(spoiled, tmp_path / "report", n_boot=100)
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "psm &lt;b&gt;6&lt;/b&gt;" in page and "<b>6</b>" not in page


# --- without variants ------------------------------------------------------------------------


def test_a_variants_file_that_groups_nothing_leaves_the_report_as_it_was(tmp_path: Path) -> None:
    plain = write_synthetic_results(tmp_path / "results", models=3, tasks=1, metrics=2, samples=40)
    build_report(plain, tmp_path / "before", n_boot=100)
    entries = {
        f"model-{m:02d}": {"base": None, "group": f"model-{m:02d}", "settings": {}, "swept": {}}
        for m in range(3)
    }
    (plain / "variants.json").write_text(json.dumps({"variants": entries, "sweeps": []}))
    build_report(plain, tmp_path / "after", n_boot=100)
    assert _hashes(tmp_path / "before") == _hashes(tmp_path / "after")
    (plain / "variants.json").write_text("{not json")
    built = build_report(plain, tmp_path / "broken", n_boot=100)
    assert any(w.startswith("variants.json: unreadable") for w in built.warnings)


def test_the_sweep_without_its_variants_file_is_a_plain_report(
    results: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "results"
    shutil.copytree(results, bare)
    (bare / "variants.json").unlink()
    build_report(bare, tmp_path / "report", n_boot=100)
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "Settings" not in page and 'class="group"' not in page
    assert "| Group |" not in (tmp_path / "report" / "leaderboard.md").read_text(encoding="utf-8")
    comparisons = pd.read_csv(tmp_path / "report" / "comparisons.csv")
    assert len(comparisons) == 2 * 10  # every pair of 5 models, on both metrics


# --- the pieces --------------------------------------------------------------------------------


def _grid_variants(n_a: int, n_b: int) -> tuple[Variants, list[str]]:
    models = {}
    for i in range(n_a):
        for j in range(n_b):
            name = f"g@a={i},b={j}"
            models[name] = Variant(
                name=name, group="g", base="g", swept={"x.a": str(i), "x.b": str(j)}
            )
    models["solo"] = Variant(name="solo", group="solo")
    models["solo-fast"] = Variant(name="solo-fast", group="solo", base="solo")
    return Variants(models=models, sweeps=[]), sorted(models)


def test_pairs_grow_with_the_variants_not_their_square() -> None:
    variants, models = _grid_variants(10, 10)
    pairs = comparison_pairs(variants, "t", models)  # ranked by name here
    # 99 against the group's best, 2 × 90 within lines (minus overlaps), solo-fast vs solo,
    # and the two groups' bests.
    assert len(pairs) < 300 and len(pairs) > 200
    assert ("g@a=0,b=0", "solo") in pairs and ("solo", "solo-fast") in pairs
    assert ("g@a=1,b=1", "g@a=2,b=2") not in pairs  # differ in two settings, neither best
    assert ("g@a=1,b=5", "g@a=1,b=7") not in pairs  # same line, but neither its best
    assert ("g@a=1,b=0", "g@a=1,b=7") in pairs  # the line's best against a member
    small, models = _grid_variants(2, 2)
    assert len(comparison_pairs(small, "t", models)) == 5 + 1 + 1


def test_grids_groups_and_names() -> None:
    variants, models = _grid_variants(3, 2)
    (grid,) = sweep_grids(variants, "t", models)
    assert grid.group == "g" and grid.axes == {"x.a": ["0", "1", "2"], "x.b": ["0", "1"]}
    assert list(grid.members)[:3] == ["g@a=0,b=0", "g@a=0,b=1", "g@a=1,b=0"]
    assert group_order(["g@a=1,b=1", "solo", "g@a=0,b=0"], variants.group) == [
        ("g", ["g@a=1,b=1", "g@a=0,b=0"]),
        ("solo", ["solo"]),
    ]
    assert axis_names(["models.engine_args.psm", "a.lang", "b.lang"]) == {
        "models.engine_args.psm": "psm",
        "a.lang": "a.lang",
        "b.lang": "b.lang",
    }
    names = axis_names(["x.a", "x.b"])
    assert describe_pair(variants, "g@a=0,b=1", "g@a=2,b=1", names) == ("a 0", "a 2", "b 1")
    assert describe_pair(variants, "solo", "solo-fast", names) == ("solo", "solo-fast", "")


def test_axis_labels_keep_the_config_order(results: Path) -> None:
    variants, _ = load_variants(results)
    assert variants is not None
    variants.sweeps[0] = type(variants.sweeps[0])(
        base="tess", tasks=(SWEEP_TASK,), axes={PSM: ("6", "4"), LANGUAGES: ("rus+eng", "rus")}
    )
    (grid,) = sweep_grids(variants, SWEEP_TASK, list(variants.models))
    assert grid.axes == {PSM: ["6", "4"], LANGUAGES: ["rus+eng", "rus"]}
