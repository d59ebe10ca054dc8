"""index.html in a real headless Chromium (Debian's ``chromium``), network off, through the
DevTools protocol: it loads, logs no console error, requests nothing outside the file, and its
screenshot is not blank."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.browser import CHROMIUM, DevTools, chromium_page
from tests.synthetic_results import (
    JUDGE_UNTRUSTED,
    add_judge_results,
    add_perf_results,
    write_sweep_results,
    write_synthetic_results,
)
from vlmhyperbench.reporting.build import build_report

websocket = pytest.importorskip("websocket")  # websocket-client
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    results = write_synthetic_results(root / "results", models=3, tasks=2, metrics=3, samples=40)
    build_report(results, root / "report", n_boot=200)
    return root / "report" / "index.html"


@pytest.fixture(scope="module")
def sweep_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    build_report(write_sweep_results(root / "results"), root / "report", n_boot=200)
    return root / "report" / "index.html"


@pytest.fixture(scope="module")
def perf_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("perf")
    results = write_synthetic_results(root / "results", models=3, tasks=2, metrics=2, samples=40)
    build_report(add_perf_results(results), root / "report", n_boot=100)
    return root / "report" / "index.html"


@pytest.fixture(scope="module")
def judge_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("judges")
    results = write_synthetic_results(root / "results", models=2, tasks=1, metrics=2, samples=6)
    build_report(add_judge_results(results), root / "report", n_boot=100)
    return root / "report" / "index.html"


@pytest.fixture()
def chromium(tmp_path: Path) -> Iterator[DevTools]:
    with chromium_page(tmp_path / "profile") as client:
        yield client


def inspect(chromium: DevTools, page: Path) -> dict[str, Any]:
    """Load ``page`` offline; its errors, outside requests, images and screenshot."""
    for domain in ("Page", "Runtime", "Log", "Network"):
        chromium.send(f"{domain}.enable")
    chromium.send(
        "Network.emulateNetworkConditions",
        offline=True,
        latency=0,
        downloadThroughput=-1,
        uploadThroughput=-1,
    )
    chromium.send("Page.navigate", url=page.as_uri())
    chromium.wait_for("Page.loadEventFired")
    title = chromium.send("Runtime.evaluate", expression="document.title")["result"]["value"]
    images = chromium.send(
        "Runtime.evaluate",
        expression="Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
        ".length + '/' + document.images.length",
    )["result"]["value"]
    shot = chromium.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    errors = [
        e
        for e in chromium.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    requests = [
        e["params"]["request"]["url"]
        for e in chromium.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    loaded, total = map(int, images.split("/"))
    return {
        "title": title,
        "errors": errors,
        "outside": [u for u in requests if not u.startswith(("file://", "data:"))],
        "images": (loaded, total),
        "screenshot": Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB"),
    }


def test_index_renders_offline_without_errors_or_outside_requests(
    page: Path, chromium: DevTools, tmp_path: Path
) -> None:
    seen = inspect(chromium, page)
    assert "VLMHyperBench report" in seen["title"]
    assert seen["errors"] == []
    assert seen["outside"] == []
    loaded, total = seen["images"]
    assert total >= 8 and loaded == total  # every figure decoded
    image = seen["screenshot"]
    image.save(tmp_path / "index.png")
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # text, tables, figures: not a blank page
    assert max(colors)[0] < 0.97 * image.width * image.height


def test_the_check_sees_errors_and_outside_requests(
    page: Path, chromium: DevTools, tmp_path: Path
) -> None:
    """The same check on a spoiled copy fails: it can tell."""
    spoiled = tmp_path / "spoiled.html"
    spoiled.write_text(
        page.read_text(encoding="utf-8").replace(
            "</body>",
            '<img src="https://cdn.example.com/x.png"><script>console.error("boom")</script>'
            "</body>",
        ),
        encoding="utf-8",
    )
    seen = inspect(chromium, spoiled)
    assert seen["outside"] == ["https://cdn.example.com/x.png"]
    assert seen["errors"]


def test_the_settings_section_of_a_sweep_renders(sweep_page: Path, chromium: DevTools) -> None:
    """A run with a 2×2 sweep: the Settings section is laid out, with its figures decoded and
    the variants grouped under their base model in the leaderboard."""
    seen = inspect(chromium, sweep_page)
    assert seen["errors"] == [] and seen["outside"] == []
    loaded, total = seen["images"]
    assert loaded == total
    facts = chromium.send(
        "Runtime.evaluate",
        returnByValue=True,
        expression="""(() => {
            const section = document.querySelector('section.settings');
            const images = Array.from(section.querySelectorAll('img'));
            return {
                heading: document.getElementById('settings-demo_ocr').innerText,
                height: section.getBoundingClientRect().height,
                figures: images.filter(i => i.complete && i.naturalWidth > 0).length,
                sentences: section.querySelectorAll('ul.verdicts li.sig').length,
                groups: Array.from(document.querySelectorAll('tr.group th')).map(t => t.innerText),
            };
        })()""",
    )["result"]["value"]
    assert facts["heading"] == "Settings" and facts["height"] > 300
    assert facts["figures"] == 3  # psm, languages, Pareto
    assert facts["sentences"] >= 2
    assert "tess 4 variants" in facts["groups"]


def test_the_serving_section_renders_with_escaped_names(
    perf_page: Path, chromium: DevTools
) -> None:
    """Perf results and costs: the section is laid out with its figures decoded, the untrusted
    model name and hardware label are text (no element from them), and no cost reads "—"."""
    seen = inspect(chromium, perf_page)
    assert seen["errors"] == [] and seen["outside"] == []
    loaded, total = seen["images"]
    assert loaded == total
    facts = chromium.send(
        "Runtime.evaluate",
        returnByValue=True,
        expression="""(() => {
            const section = document.getElementById('perf');
            const images = Array.from(section.querySelectorAll('img'));
            const costRows = Array.from(section.querySelectorAll('table.cost tbody tr'));
            return {
                heading: section.querySelector('h2').innerText,
                height: section.getBoundingClientRect().height,
                figures: images.filter(i => i.complete && i.naturalWidth > 0).length,
                scripts: document.querySelectorAll('script').length,
                bold: Array.from(section.querySelectorAll('b b')).length,
                noCost: costRows.filter(r => r.cells[0].innerText === 'model-02')
                    .map(r => r.cells[2].innerText),
                untrusted: costRows.some(r => r.cells[0].innerText === 'evil<script>alert(1)'),
            };
        })()""",
    )["result"]["value"]
    assert facts["heading"] == "Serving performance and cost" and facts["height"] > 500
    assert facts["figures"] == 3  # task_00: throughput-latency and cost Pareto; task_01: Pareto
    assert facts["scripts"] == 0 and facts["bold"] == 0 and facts["untrusted"]
    assert facts["noCost"] == ["—", "—"]  # task_00 and task_01


def test_the_judge_section_renders_with_escaped_names(judge_page: Path, chromium: DevTools) -> None:
    """A judge metric with two judges: the section is laid out, the untrusted judge name is
    text (no element from it), α is shown, and the unpriced judge's cost reads "—"."""
    seen = inspect(chromium, judge_page)
    assert seen["errors"] == [] and seen["outside"] == []
    facts = chromium.send(
        "Runtime.evaluate",
        returnByValue=True,
        expression="""(() => {
            const section = document.getElementById('judges');
            const costRows = Array.from(section.querySelectorAll('table.judge-cost tbody tr'));
            return {
                heading: section.querySelector('h2').innerText,
                height: section.getBoundingClientRect().height,
                scripts: document.querySelectorAll('script').length,
                alpha: section.querySelector('b.alpha').innerText,
                judges: costRows.map(r => r.cells[0].innerText),
                costs: costRows.map(r => r.cells[6].innerText),
                drift: section.querySelectorAll('p.drift').length,
            };
        })()""",
    )["result"]["value"]
    assert facts["heading"] == "Judge metrics" and facts["height"] > 300
    assert facts["scripts"] == 0 and facts["alpha"] == "0.620" and facts["drift"] == 0
    assert facts["judges"] == ["judge-a", JUDGE_UNTRUSTED]
    assert facts["costs"] == ["$0.00144", "—"]
