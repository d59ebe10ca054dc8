"""Data content decides re-runs: an edited sample or image is sent again, and nothing else.

A real ``snakemake`` run with the wrapper on a tiny model; then, in place in the built dataset,
one sample's question is edited and one image's bytes change: the next run sends exactly that
sample and the samples that show that image. Changed answers alone re-score without sending
anything (no model server is even started).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import make_workdir, snakemake
from tests.integration.test_resume import (
    MODEL,
    TASK,
    journal_ids,
    logged_since,
    requests_of_last_server,
)
from vlmhyperbench.datasets.manifest import read_manifest, write_manifest

pytestmark = pytest.mark.slow

SCORE = f"results/scores/{MODEL}/{TASK}/exact_match.json"
TARGETS = (f"results/predictions/{MODEL}/{TASK}.jsonl", SCORE)


def test_edited_sample_and_image_are_sent_again_and_nothing_else(tmp_path: Path) -> None:
    workdir = make_workdir(
        tmp_path / "wd", models=[MODEL], tasks=[TASK], inference={"concurrency": 2}
    )
    snakemake(workdir, *TARGETS)
    dry = snakemake(workdir, "-n", *TARGETS)
    assert "Nothing to be done" in dry.stdout + dry.stderr, "unchanged data re-ran a job"
    data = workdir / "data" / "demo_docs_vqa"
    samples = read_manifest(data / "manifest.jsonl")
    wrapper_log = workdir / "logs" / "serve" / f"{MODEL}.wrapper.log"
    journal_before = journal_ids(workdir)

    # One question edited, one image changed (every sample showing it must go again).
    edited = samples[0]
    edited.question += " Ответь кратко."
    image = next(s.images[0] for s in samples if s.images and s.images[0] not in edited.images)
    shows_image = {s.id for s in samples if image in s.images}
    with Image.open(data / image) as picture:
        changed = picture.convert("RGB")
    changed.putpixel((0, 0), (255 - changed.getpixel((0, 0))[0], 0, 0))
    changed.save(data / image)
    write_manifest(data, samples)

    snakemake(workdir, *TARGETS)
    expected = {edited.id} | shows_image
    assert requests_of_last_server(wrapper_log) == len(expected)
    resent = journal_ids(workdir)[len(journal_before) :]
    assert sorted(resent) == sorted(expected)
    output = workdir / TARGETS[0]
    lines = {x["id"]: x for x in map(json.loads, output.read_text().splitlines())}
    assert lines[edited.id]["prompt"]["user"] == edited.question
    assert all(x["error"] is None for x in lines.values())

    # Answers alone: scores follow, nothing is sent and no server starts.
    score_before = (workdir / SCORE).stat().st_mtime_ns
    target = next(s for s in samples if s.id not in expected)
    target.answers = [lines[target.id]["prediction"]]  # the model's answer is now right
    write_manifest(data, samples)
    started = datetime.now()
    snakemake(workdir, *TARGETS)
    predict_log = (workdir / "logs" / "predict" / MODEL / f"{TASK}.log").read_text()
    assert "every sample is answered in the journal" in predict_log
    serve_log = (workdir / "logs" / "serve" / f"{MODEL}.log").read_text()
    assert "no predict job needed the server; no model loaded" in serve_log
    assert not logged_since(wrapper_log, started), "the wrapper ran"
    assert journal_ids(workdir)[len(journal_before) :] == resent
    assert (workdir / SCORE).stat().st_mtime_ns != score_before
