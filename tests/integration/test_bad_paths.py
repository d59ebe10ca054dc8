"""One bad image path never kills or blocks a task; a dataset with no images says so up front.

A real ``snakemake`` run on a local dataset whose image paths are a directory, a FIFO (reading
it would block forever), a device (``/dev/zero``: reading never ends) and a dangling symbolic
link: those samples are per-sample errors naming the path, the others are answered, and the
re-run has nothing to do. (An unreadable file is not tried here: the tests run as root.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import make_workdir, read_yaml, snakemake, write_yaml
from vlmhyperbench.datasets.demo import generate_demo_dataset

pytestmark = pytest.mark.slow

MODEL = "tiny-llava"


def local_dataset_workdir(tmp_path: Path, name: str, per_class: int = 1) -> tuple[Path, Path, list]:
    dataset_dir = tmp_path / name
    samples = generate_demo_dataset(
        dataset_dir, kind="vqa", name=name, per_class=per_class, subsets=["clean"]
    )
    workdir = make_workdir(tmp_path / "wd", models=[MODEL], tasks=[f"{name}_vqa"])
    write_yaml(
        workdir / "config" / "datasets" / f"{name}.yaml",
        {"source": {"type": "local", "path": str(dataset_dir)}},
    )
    task = read_yaml(workdir / "config" / "tasks" / "demo_field_vqa.yaml")
    task["dataset"] = name
    write_yaml(workdir / "config" / "tasks" / f"{name}_vqa.yaml", task)
    return dataset_dir, workdir, samples


def test_directory_fifo_device_and_dangling_link_are_per_sample_errors(tmp_path: Path) -> None:
    dataset_dir, workdir, samples = local_dataset_workdir(tmp_path, "bad_paths", per_class=2)
    images = sorted({image for sample in samples for image in sample.images})
    assert len(images) >= 5
    broken = {
        images[0]: "is a directory",
        images[1]: "is a FIFO",
        images[2]: "is a device",
        images[3]: "image not found",
    }
    paths = {image: dataset_dir / image for image in broken}
    paths[images[0]].unlink()
    paths[images[0]].mkdir()
    paths[images[1]].unlink()
    os.mkfifo(paths[images[1]])
    paths[images[2]].unlink()
    paths[images[2]].symlink_to("/dev/zero")
    paths[images[3]].unlink()
    paths[images[3]].symlink_to(dataset_dir / "nowhere.png")

    result = snakemake(workdir, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    output = workdir / "results" / "predictions" / MODEL / "bad_paths_vqa.jsonl"
    lines = {x["id"]: x for x in map(json.loads, output.read_text().splitlines())}
    assert list(lines) == [s.id for s in samples]
    for sample in samples:
        line = lines[sample.id]
        bad = [image for image in sample.images if image in broken]
        if bad:
            assert line["prediction"] is None
            assert broken[bad[0]] in line["error"] and bad[0] in line["error"], line["error"]
        else:
            assert line["error"] is None and line["prediction"] is not None
    again = snakemake(workdir, "-n", timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_dataset_with_all_its_images_missing_stops_before_inference(tmp_path: Path) -> None:
    dataset_dir, workdir, samples = local_dataset_workdir(tmp_path, "no_images")
    for sample in samples:
        for image in sample.images:
            (dataset_dir / image).unlink(missing_ok=True)
    result = snakemake(workdir, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "MissingOutputException" not in output
    assert "dataset 'no_images': none of the" in output
    assert f"exists under {dataset_dir}" in output and samples[0].images[0] in output
    serve_log = workdir / "logs" / "serve" / f"{MODEL}.log"
    said = serve_log.read_text(encoding="utf-8") if serve_log.exists() else ""
    assert "starting the wrapper" not in said, "no server starts for a dataset without images"
