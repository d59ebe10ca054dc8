"""A corrupt image and a missing image become per-sample errors, not a crashed run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import make_workdir, read_yaml, snakemake, write_yaml
from vlmhyperbench.datasets.demo import generate_demo_dataset

pytestmark = pytest.mark.slow


def test_corrupt_and_missing_images_are_recorded_per_sample(tmp_path: Path) -> None:
    dataset_dir = tmp_path / "docs"
    samples = generate_demo_dataset(
        dataset_dir, kind="vqa", name="broken_docs", per_class=1, subsets=["clean"]
    )
    by_class = {s.doc_class: s.images[0] for s in samples}
    (dataset_dir / by_class["passport"]).write_bytes(
        b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20
    )
    (dataset_dir / by_class["snils"]).unlink()

    workdir = make_workdir(tmp_path / "wd", models=["tiny-llava"], tasks=["broken_vqa"])
    write_yaml(
        workdir / "config" / "datasets" / "broken_docs.yaml",
        {"source": {"type": "local", "path": str(dataset_dir)}},
    )
    task = read_yaml(workdir / "config" / "tasks" / "demo_field_vqa.yaml")
    task["dataset"] = "broken_docs"
    write_yaml(workdir / "config" / "tasks" / "broken_vqa.yaml", task)

    snakemake(workdir)

    lines = [
        json.loads(x)
        for x in (workdir / "results/predictions/tiny-llava/broken_vqa.jsonl")
        .read_text()
        .splitlines()
    ]
    assert [x["id"] for x in lines] == [s.id for s in samples]
    by_id = {x["id"]: x for x in lines}
    for sample in samples:
        line = by_id[sample.id]
        if sample.doc_class == "passport":
            assert line["prediction"] is None
            assert line["error"].startswith("HTTP 400"), line["error"]
        elif sample.doc_class == "snils":
            assert line["prediction"] is None
            assert "image not found" in line["error"] and by_class["snils"] in line["error"]
        else:
            assert line["error"] is None and line["prediction"] is not None

    scores = pd.read_parquet(workdir / "results/scores/tiny-llava/broken_vqa/exact_match.parquet")
    failed = scores[scores["error"].notna()]
    assert set(failed["doc_class"]) == {"passport", "snils"}
    assert (failed["value"] == 0).all()
    aggregate = json.loads(
        (workdir / "results/scores/tiny-llava/broken_vqa/exact_match.json").read_text()
    )
    assert aggregate["n"] == len(samples)
    assert aggregate["n_errors"] == len(failed)
