"""``vlmhb view`` as a person uses it: a real uvicorn server on 127.0.0.1 over a small real run
(the demo generator's documents, three models, a judge metric, variants, a baseline run that
differs on known samples), driven by headless Chromium (Debian's ``chromium``) with every
host but 127.0.0.1 unreachable, and by httpx for what a browser would not ask.

One server and one browser for the module. The expected ids come from the rules that wrote
the answers, never from the explorer's own output.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pytest
import uvicorn
from PIL import Image
from typer.testing import CliRunner

from tests.browser import CHROMIUM, DevTools, chromium_page
from tests.synthetic_results import _write_score
from vlmhyperbench.cli.main import app as cli
from vlmhyperbench.datasets.demo.generate import generate_demo_dataset
from vlmhyperbench.datasets.manifest import Sample, write_manifest
from vlmhyperbench.explorer.app import create_app
from vlmhyperbench.explorer.session import open_explorer
from vlmhyperbench.pipeline.provenance import provenance_path
from vlmhyperbench.reporting.build import build_report
from vlmhyperbench.reporting.summary import build_summary, write_summary
from vlmhyperbench.runtime.io import atomic_write_json, file_sha256

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")

TASK = "vqa"
DATASET = "docs"
MODELS = ("alpha", "alpha@temp=1", "beta")
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
HOSTILE_QUESTION = '<img src=x onerror="window.__xss=1">Какая <b>фамилия</b>?'
HOSTILE_FILE = 'images/p"onerror="window.__xss=3.png'
JUDGE = "judge-x"
JUDGE_REPLY = '{"verdict": "correct"} <script>window.__xss=4</script>'
ERROR = "HTTP 400: image unreadable"
N_BOOT = 200
SCREENSHOT_ENV = "VLMHB_EXPLORER_SCREENSHOT"  # where to save the task page's screenshot


# --- the run --------------------------------------------------------------------------------


def right(model: str, k: int, baseline: bool = False) -> bool:
    """Whether ``model`` answered sample ``k`` right: the rule the run is written from. The
    baseline differs from this run on alpha's samples 0 (wrong then) and 3 (right then)."""
    if model == "alpha":
        return (k % 4 != 3) != (baseline and k in (0, 3))
    if model == "alpha@temp=1":
        return k % 3 != 0
    return k % 2 == 0 and k != 5


def failed(model: str, k: int) -> bool:
    return model == "beta" and k == 5


def answer(model: str, k: int, sample: Sample, baseline: bool) -> str | None:
    if failed(model, k):
        return None
    if sample.id == "evil-001" and model == "beta":
        return HOSTILE
    return sample.answers[0] if right(model, k, baseline) else f"не знаю {k}"


def write_dataset(data: Path) -> list[Sample]:
    """The demo generator's VQA documents (2 pages × 2 subsets), plus one sample whose
    question, reference and file name are hostile; a symlink out of the folder and a FIFO."""
    folder = data / DATASET
    samples = generate_demo_dataset(
        folder,
        kind="vqa",
        name=DATASET,
        per_class=1,
        doc_classes=("passport", "invoice"),
        subsets=("clean", "blur"),
        image_width=480,
    )
    shutil.copy(folder / samples[0].images[0], folder / HOSTILE_FILE)
    evil = Sample(
        id="evil-001",
        images=[HOSTILE_FILE],
        question=HOSTILE_QUESTION,
        answers=["<script>window.__xss=2</script>"],
        doc_class="passport",
        question_type="surname",
        subset="clean",
        meta={"doc_id": "evil"},
    )
    samples.append(evil)
    write_manifest(folder, samples)
    (data / "outside.png").write_bytes((folder / samples[0].images[0]).read_bytes())
    (folder / "images" / "link-out.png").symlink_to(data / "outside.png")
    (folder / "images" / "link-in.png").symlink_to(folder / samples[0].images[0])
    os.mkfifo(folder / "images" / "fifo.png")
    return samples


def _prediction(model: str, k: int, sample: Sample, baseline: bool) -> dict[str, Any]:
    text = answer(model, k, sample, baseline)
    return {
        "id": sample.id,
        "prediction": text,
        "error": ERROR if failed(model, k) else None,
        "performance": {"latency_ms": 100.0 + k, "ttft_ms": 40.0 + k, "tpot_ms": 5.0},
        "usage": {"prompt_tokens": 300 + k, "completion_tokens": 7},
        "prompt": {"system": "Отвечай только значением поля.", "user": sample.question},
        "finish_reason": "stop",
    }


def _frame(model: str, samples: list[Sample], baseline: bool, cer: bool) -> pd.DataFrame:
    ok = [right(model, k, baseline) and not failed(model, k) for k in range(len(samples))]
    return pd.DataFrame(
        {
            "id": [s.id for s in samples],
            "value": [float(not r) if cer else float(r) for r in ok],
            "error": [ERROR if failed(model, k) else None for k in range(len(samples))],
            "prediction": [answer(model, k, s, baseline) for k, s in enumerate(samples)],
            "reference": [s.answers[0] for s in samples],
            "doc_class": [s.doc_class for s in samples],
            "question_type": [s.question_type for s in samples],
            "subset": [s.subset for s in samples],
            "doc_id": [s.meta["doc_id"] for s in samples],
            "question": [s.question for s in samples],
        }
    )


def _judge_files(root: Path, model: str, samples: list[Sample], frame: pd.DataFrame) -> None:
    lines = [
        {"id": s.id, "verdict": v, "label": "correct" if v else "incorrect", "status": "ok",
         "detail": "JSON verdict", "reply": JUDGE_REPLY}
        for s, v in zip(samples, frame["value"], strict=True)
    ]  # fmt: skip
    path = root / "judgements" / "judged" / JUDGE / model / f"{TASK}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
    frame[f"judge_verdict:{JUDGE}"] = frame["value"]
    frame[f"judge_status:{JUDGE}"] = "ok"


def write_run(root: Path, samples: list[Sample], manifest_sha: str, baseline: bool) -> Path:
    """results/ in the workflow's layout: predictions, scores (exact_match ↑, cer ↓, the judge
    metric judged ↑), summary, provenance naming the dataset, variants.json."""
    scores = []
    for model in MODELS:
        lines = [_prediction(model, k, s, baseline) for k, s in enumerate(samples)]
        path = root / "predictions" / model / f"{TASK}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), "utf-8")
        errors = pd.Series([failed(model, k) for k in range(len(samples))]).to_numpy()
        groups = {"subset": [s.subset for s in samples]}
        for metric, higher in (("exact_match", True), ("cer", False), ("judged", True)):
            frame = _frame(model, samples, baseline, cer=metric == "cer")
            if metric == "judged":
                _judge_files(root, model, samples, frame)
            scores.append(_write_score(root, model, TASK, metric, higher, frame, errors, groups))
        atomic_write_json(
            provenance_path(root, model, TASK),
            {"dataset": {"name": DATASET, "version": "1", "manifest_sha256": manifest_sha}},
        )
    write_summary(build_summary(scores), root / "summary.parquet", root / "summary.csv")
    variants = {name: {"group": "alpha" if name.startswith("alpha") else name} for name in MODELS}
    variants["alpha@temp=1"]["base"] = "alpha"
    judge = {"judges": [JUDGE], "verdict": {"type": "binary"}}
    atomic_write_json(
        root / "variants.json", {"variants": variants, "judge_metrics": {"judged": judge}}
    )
    return root


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and mtime (ns): what a write would change."""
    out = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        out[path.relative_to(folder).as_posix()] = (info.st_size, info.st_mtime_ns)
    return out


# --- the server and the browser ---------------------------------------------------------------


class Site:
    def __init__(self, root: Path, samples: list[Sample], url: str, before: dict) -> None:
        self.root, self.samples, self.url = root, samples, url
        self.results = root / "run" / "results"
        self.baseline = root / "base" / "results"
        self.data = root / "run" / "data"
        self.before = before  # the folder before the explorer opened it

    def ids(self, keep) -> list[str]:
        return sorted(s.id for k, s in enumerate(self.samples) if keep(k))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("explorer")
    samples = write_dataset(root / "run" / "data")
    sha = file_sha256(root / "run" / "data" / DATASET / "manifest.jsonl")
    write_run(root / "run" / "results", samples, sha, baseline=False)
    write_run(root / "base" / "results", samples, sha, baseline=True)
    before = snapshot(root)
    explorer = open_explorer(
        root / "run" / "results", baseline=root / "base" / "results", n_boot=N_BOOT
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(explorer), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    site = Site(root, samples, f"http://127.0.0.1:{port}", before)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield site
    server.should_exit = True
    thread.join(timeout=20)
    explorer.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    with chromium_page(tmp_path_factory.mktemp("chromium") / "profile") as client:
        for domain in ("Page", "Runtime", "Log", "Network"):
            client.send(f"{domain}.enable")
        yield client


def visit(browser: DevTools, url: str) -> dict[str, Any]:
    """Load ``url``; the console errors, the requests it made, the dialogs it opened."""
    browser.events.clear()
    browser.send("Page.navigate", url=url)
    ends = ("Page.loadEventFired", "Page.javascriptDialogOpening")
    deadline = time.monotonic() + 60
    while not any(e.get("method") in ends for e in browser.events):
        assert time.monotonic() < deadline, f"{url} did not load"
        browser.events.append(json.loads(browser.ws.recv()))
    browser.send("Runtime.evaluate", expression="1")  # let the events of the load arrive
    events = browser.events
    return {
        "errors": [
            e for e in events
            if e.get("method") == "Runtime.exceptionThrown"
            or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
            or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
        ],
        "requests": [
            e["params"]["request"]["url"]
            for e in events if e.get("method") == "Network.requestWillBeSent"
        ],
        "dialogs": [e for e in events if e.get("method") == "Page.javascriptDialogOpening"],
    }  # fmt: skip


def evaluate(browser: DevTools, expression: str) -> Any:
    return browser.send("Runtime.evaluate", expression=expression, returnByValue=True)[
        "result"
    ].get("value")


def assert_clean(seen: dict[str, Any], site: Site) -> None:
    assert seen["dialogs"] == []
    assert seen["errors"] == []
    local = (site.url + "/", "data:")
    assert [u for u in seen["requests"] if not u.startswith(local)] == []


ROW_IDS = "Array.from(document.querySelectorAll('table.samples tbody tr')).map(r => r.dataset.id)"


# --- tests -------------------------------------------------------------------------------------


def test_overview_shows_tasks_and_models_with_variants_grouped(
    site: Site, browser: DevTools
) -> None:
    seen = visit(browser, site.url + "/")
    assert_clean(seen, site)
    facts = evaluate(browser, """(() => ({
        tasks: Array.from(document.querySelectorAll('table.overview thead a:not(.diff)'))
            .map(a => a.innerText),
        groups: Array.from(document.querySelectorAll('tr.group-head')).map(r => r.innerText),
        models: Array.from(document.querySelectorAll('table.overview tbody td:first-child'))
            .map(c => c.innerText),
        cells: document.querySelectorAll('table.overview tbody td a').length,
    }))()""")  # fmt: skip
    assert facts["tasks"] == [TASK]
    assert facts["groups"] == ["alpha (2 variants)"]
    assert facts["models"] == ["alpha", "alpha@temp=1", "beta"]
    assert facts["cells"] == 3


def test_filters_narrow_the_list_to_the_expected_ids(site: Site, browser: DevTools) -> None:
    seen = visit(browser, f"{site.url}/task/{TASK}")
    assert_clean(seen, site)
    assert sorted(evaluate(browser, ROW_IDS)) == site.ids(lambda k: True)
    # the form, as a person fills it: alpha right, beta wrong, on the blurred pages
    evaluate(browser, """(() => {
        const form = document.querySelector('form.filters');
        form.elements['right'].value = 'alpha';
        form.elements['wrong'].value = 'beta';
        form.elements['g.subset'].value = 'blur';
        form.submit();
    })()""")  # fmt: skip
    browser.events.clear()
    browser.wait_for("Page.loadEventFired")
    url = evaluate(browser, "location.href")
    assert "right=alpha" in url and "wrong=beta" in url and "g.subset=blur" in url
    blur = {k for k, s in enumerate(site.samples) if s.subset == "blur"}
    expected = site.ids(lambda k: k in blur and right("alpha", k) and not right("beta", k))
    assert sorted(evaluate(browser, ROW_IDS)) == expected and expected
    assert evaluate(browser, "document.getElementById('total').innerText") == str(len(expected))


def test_search_sort_and_errors_filters(site: Site, browser: DevTools) -> None:
    visit(browser, f"{site.url}/task/{TASK}?errors=1")
    assert evaluate(browser, ROW_IDS) == site.ids(lambda k: failed("beta", k))
    visit(browser, f"{site.url}/task/{TASK}?q={quote('ВОРОБЬЁВА')}")
    hits = site.ids(lambda k: "ВОРОБЬЁВА" in site.samples[k].answers[0])
    assert sorted(evaluate(browser, ROW_IDS)) == hits and hits
    visit(browser, f"{site.url}/task/{TASK}?sort=score%3Abeta&order=desc&model=beta")
    order = evaluate(browser, ROW_IDS)
    best = {s.id for k, s in enumerate(site.samples) if right("beta", k) and not failed("beta", k)}
    assert set(order[: len(best)]) == best
    assert evaluate(browser, "document.querySelectorAll('table.samples thead th').length") == 3


def test_thumbnails_decode(site: Site, browser: DevTools) -> None:
    seen = visit(browser, f"{site.url}/task/{TASK}")
    assert_clean(seen, site)
    evaluate(browser, "window.scrollTo(0, document.body.scrollHeight)")
    deadline = time.monotonic() + 20
    count = "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"
    while evaluate(browser, count) < len(site.samples) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (
        evaluate(browser, count) == evaluate(browser, "document.images.length") == len(site.samples)
    )
    shot = browser.send("Page.captureScreenshot", format="png")
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # text, thumbnails, colours: not blank
    if os.environ.get(SCREENSHOT_ENV):  # for docs/explorer-task.png
        visit(browser, f"{site.url}/task/{TASK}?g.subset=blur&sort=disagreement")
        clip = {"x": 0, "y": 0, "width": 1280, "height": 900, "scale": 1}
        top = browser.send("Page.captureScreenshot", format="png", clip=clip)
        Path(os.environ[SCREENSHOT_ENV]).write_bytes(base64.b64decode(top["data"]))


def test_sample_page_shows_every_answer_and_nothing_hostile_runs(
    site: Site, browser: DevTools
) -> None:
    k = len(site.samples) - 1  # evil-001
    seen = visit(browser, f"{site.url}/task/{TASK}/sample?id=evil-001")
    assert_clean(seen, site)
    facts = evaluate(browser, """(() => ({
        models: Array.from(document.querySelectorAll('section.card')).map(c => c.dataset.model),
        answers: Array.from(document.querySelectorAll(
            'section.card > .side > div:first-child .answer-text')).map(a => a.innerText),
        question: document.querySelector('p.question').innerText,
        reference: document.querySelector('.refval').innerText,
        figure: document.querySelector('figcaption').innerText,
        image: document.querySelector('img.page').naturalWidth,
        replies: Array.from(document.querySelectorAll('pre.reply')).map(p => p.textContent),
        scripts: document.querySelectorAll('script').length,
        xss: window.__xss === undefined ? null : window.__xss,
    }))()""")  # fmt: skip
    assert facts["models"] == list(MODELS)
    assert facts["answers"] == [answer(m, k, site.samples[k], False) for m in MODELS]
    assert HOSTILE in facts["answers"]
    assert facts["question"] == HOSTILE_QUESTION
    assert facts["reference"] == "<script>window.__xss=2</script>"
    assert facts["figure"].startswith(HOSTILE_FILE) and facts["image"] > 0
    assert facts["replies"] == [JUDGE_REPLY] * (2 * len(MODELS))  # this run and the baseline
    assert facts["scripts"] == 1 and facts["xss"] is None  # only explorer.js
    seen = visit(browser, f"{site.url}/task/{TASK}?q=script")
    assert_clean(seen, site)
    cell = (
        'document.querySelector(\'tr[data-id="evil-001"] td[data-model="beta"] .text\').innerText'
    )
    assert evaluate(browser, cell) == HOSTILE
    assert (
        evaluate(
            browser, "window.__xss === undefined && document.querySelectorAll('script').length"
        )
        == 1
    )


def test_run_diff_lists_exactly_the_changed_samples_and_matches_the_report(
    site: Site, browser: DevTools
) -> None:
    seen = visit(browser, f"{site.url}/task/{TASK}/diff")
    assert_clean(seen, site)
    facts = evaluate(browser, """(() => {
        const ids = (sel) => Array.from(document.querySelectorAll(sel)).map(a => a.innerText);
        const rows = Array.from(document.querySelectorAll('table.diff-summary tbody tr'));
        return {
            improved: ids('table.changes.improved td.sid a'),
            regressed: ids('table.changes.regressed td.sid a'),
            improvedOf: Array.from(document.querySelectorAll('table.changes.improved'))
                .map(t => t.dataset.model),
            rows: rows.map(r => [r.dataset.model, r.cells[1].innerText,
                r.cells[7].innerText.split(' ')[0], r.cells[9].innerText]),
        };
    })()""")  # fmt: skip
    changed = [k for k in range(len(site.samples)) if right("alpha", k) != right("alpha", k, True)]
    assert facts["improved"] == [site.samples[k].id for k in changed if right("alpha", k)]
    assert facts["regressed"] == [site.samples[k].id for k in changed if not right("alpha", k)]
    assert facts["improvedOf"] == ["alpha"]
    report = site.root / "report"
    build_report(site.results, report, baseline_dir=site.baseline, n_boot=N_BOOT)
    csv = pd.read_csv(report / "baseline.csv")
    csv = csv[(csv["task"] == TASK) & (csv["metric"] == "exact_match")]
    expected = [[r.model, str(r.n), f"{r.change:.3f}", r.verdict] for r in csv.itertuples()]
    assert sorted(facts["rows"]) == sorted(expected)


def test_images_only_from_the_dataset_folder(site: Site) -> None:
    good = httpx.get(f"{site.url}/media/{DATASET}/images/{quote(site.samples[0].images[0][7:])}")
    assert good.status_code == 200 and good.headers["content-type"] == "image/png"
    assert httpx.get(f"{site.url}/media/{DATASET}/images/link-in.png").status_code == 200
    outside = site.data / "outside.png"
    refused = [
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "images/%2e%2e/%2e%2e/outside.png",
        quote(str(outside), safe=""),
        "/" + str(outside).lstrip("/"),
        "%2Fetc%2Fpasswd",
        "images/link-out.png",
        "images/fifo.png",
        "manifest.jsonl",
        "images",
    ]
    for kind in ("media", "thumb"):
        for path in refused:
            response = httpx.get(f"{site.url}/{kind}/{DATASET}/{path}", timeout=10)
            assert response.status_code == 404, (kind, path)
            assert response.json() == {"detail": "not found"}, (kind, path)  # the route refused
    assert httpx.get(f"{site.url}/media/other/images/x.png").status_code == 404


def test_headers_and_hosts(site: Site) -> None:
    page = httpx.get(f"{site.url}/task/{TASK}")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{site.url}/", headers={"host": "evil.example"}).status_code == 400
    assert httpx.post(f"{site.url}/").status_code == 405


def test_export_is_one_self_contained_page(site: Site, browser: DevTools, tmp_path: Path) -> None:
    out = tmp_path / "export.html"
    query = "right=alpha&wrong=beta"
    done = CliRunner().invoke(
        cli, ["view", str(site.results), "--export", str(out), "--task", TASK, "--filter", query]
    )
    assert done.exit_code == 0, done.output
    expected = site.ids(lambda k: right("alpha", k) and not right("beta", k))
    assert f"({len(expected)} samples)" in " ".join(done.output.split())
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and 'src="/' not in text
    assert "://" not in text  # no link to a server or anywhere else
    assert text.count('src="data:image/jpeg;base64,') == len(expected)
    seen = visit(browser, out.as_uri())
    assert seen["errors"] == [] and seen["dialogs"] == []
    assert [u for u in seen["requests"] if not u.startswith(("file://", "data:"))] == []
    assert sorted(evaluate(browser, ROW_IDS)) == expected
    count = "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"
    assert evaluate(browser, count) == len(expected)
    served = httpx.get(f"{site.url}/task/{TASK}/export?{query}")
    assert served.status_code == 200 and served.text == text
    inside = site.results / "export.html"
    refused = CliRunner().invoke(
        cli, ["view", str(site.results), "--export", str(inside), "--task", TASK]
    )
    assert refused.exit_code == 1 and not inside.exists()


def test_the_command_serves_on_loopback(site: Site) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmhyperbench.cli", "view", str(site.results), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline, status = time.monotonic() + 60, None
        while status is None and time.monotonic() < deadline and process.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code
            except httpx.HTTPError:
                time.sleep(0.2)
        assert status == 200
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert f"http://127.0.0.1:{port}/" in output and "warning" not in output


def test_the_session_wrote_nothing(site: Site) -> None:
    """After every test above: the results, the baseline and the dataset are as they were."""
    now = snapshot(site.root)
    touched = {p: v for p, v in now.items() if not p.startswith("report")}
    assert touched == site.before
