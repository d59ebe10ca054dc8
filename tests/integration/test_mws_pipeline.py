"""MWS-Vision-Bench end to end: a real snakemake run imports the fixture dataset as the hub
download holds it, runs the five mws_* tasks with a tiny model and Tesseract on the OCR
category, and ends in a report whose MWS-Vision-Bench section shows Tesseract's OCR score with
"—" for the other four, the tiny model's five categories and Overall, and its placement on the
published validation table. The fixture's pages are Russian documents that Tesseract reads
(mws_ocr 0.703 measured; 0.000 on the blank pages the fixture had before)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures.mws import shapes as fx
from tests.helpers import make_workdir, snakemake, write_runs, write_yaml
from vlmhyperbench.metrics.mws.overall import overall
from vlmhyperbench.reporting.mws_vision import CATEGORIES

pytestmark = pytest.mark.slow
pytest.importorskip("datasets")  # the fixture's hub download is written by datasets itself

TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")
MODEL = "tiny-llava"
TESSERACT = "tesseract-rus"
TASKS = [c.metric for c in CATEGORIES]  # the registry's tasks are named after their metrics


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (TESSDATA / "rus.traineddata").is_file():
        pytest.skip("apt-get install tesseract-ocr tesseract-ocr-rus")
    pytest.importorskip("tesserocr")
    root = tmp_path_factory.mktemp("mws_pipeline")
    hub = fx.hub_download(root / "hub")
    workdir = make_workdir(root / "wd", models=[MODEL], tasks=TASKS)
    source = {"type": "import", "format": "mws_vision", "path": str(hub)}
    write_yaml(workdir / "config" / "datasets" / "mws_vision.yaml", {"source": source})
    short = {task: {"generation": {"max_tokens": 8}} for task in TASKS}  # CPU: short replies
    write_runs(
        workdir,
        {"models": [MODEL], "tasks": TASKS, "overrides": {"tasks": short}},
        {"models": [TESSERACT], "tasks": ["mws_ocr"]},
    )
    snakemake(workdir)
    return workdir


def mws_part(workdir: Path) -> str:
    page = (workdir / "results" / "report" / "index.html").read_text(encoding="utf-8")
    start = page.index('<section id="mws-vision">')
    return page[start : page.index("</section>", start)]


def row_of(part: str, model: str) -> str:
    return next(line for line in part.splitlines() if line.startswith(f"<tr><th>{model}</th>"))


def test_every_category_is_predicted_and_scored(workdir: Path) -> None:
    summary = pd.read_csv(workdir / "results" / "summary.csv")
    overall_rows = summary[summary.group_by == "overall"]
    pairs = set(zip(overall_rows.model, overall_rows.task, overall_rows.metric, strict=True))
    assert pairs == {(MODEL, t, t) for t in TASKS} | {(TESSERACT, "mws_ocr", "mws_ocr")}
    # every question of the fixture (the anti-fraud one left out) in its category
    counts = overall_rows[overall_rows.model == MODEL].set_index("task")["n_samples"]
    assert counts.sum() == len(fx.KEPT) and counts.to_dict() == {
        "mws_ocr": 2,
        "mws_markdown": 1,
        "mws_grounding": 2,
        "mws_kie": 2,
        "mws_vqa": 2,
    }


def test_the_report_has_the_benchmark_section(workdir: Path) -> None:
    part = mws_part(workdir)
    tesseract = row_of(part, TESSERACT)
    assert tesseract.count('<td class="gap">—</td>') == 4
    assert "— <small>(1 of 5 categories)</small>" in tesseract
    cells = row_of(part, MODEL).split("<td")
    assert not any('class="gap' in cell for cell in cells[1:7])  # five categories and Overall
    summary = pd.read_csv(workdir / "results" / "summary.csv")
    means = summary[(summary.model == MODEL) & (summary.group_by == "overall")]
    expected = overall(dict(zip(means.metric, means.value, strict=True)))
    assert f'<td class="overall">{expected:.3f} <small>[' in row_of(part, MODEL)
    ocr = summary[(summary.model == TESSERACT) & (summary.group_by == "overall")].value.item()
    assert ocr > 0.5 and f"<td>{ocr:.3f} <small>" in tesseract  # 0.703 measured: it reads


def test_tesseract_reads_the_pages(workdir: Path) -> None:
    """The pages are documents in Russian: Tesseract's answers are their text, near enough."""
    path = workdir / "results" / "predictions" / TESSERACT / "mws_ocr.jsonl"
    replies = {
        r["id"]: r["prediction"] for r in map(json.loads, path.read_text("utf-8").splitlines())
    }
    assert set(replies) == {q[0] for q in fx.KEPT if q[1] == fx.OCR}
    assert "ДОГОВОР № 15" in replies["1"] and "Москва" in replies["1"]
    assert "Купить хлеб" in replies["6"]  # "molоко" mixes Latin and Cyrillic: read otherwise
    scores = pd.read_csv(workdir / "results" / "summary.csv").query(
        "model == @TESSERACT and group_by == 'doc_class'"
    )
    assert (scores.value > 0.4).all() and len(scores) == 2  # 0.873 business, 0.533 handwritten


def test_the_report_places_the_run_on_the_published_table(workdir: Path) -> None:
    part = mws_part(workdir)
    assert "A private-test number is not comparable with a validation one" in part
    placement = next(line for line in part.splitlines() if line.startswith("Overall 0."))
    assert placement.endswith("on the 2026-07-26 validation table.</li>")
    assert "ocr 0." in part  # Tesseract's OCR, in the table's ocr column
    latex = (workdir / "results" / "report" / "tables" / "mws_vision.tex").read_text("utf-8")
    assert f"{TESSERACT} & " in latex and r"-- {\scriptsize(1 of 5)}" in latex
