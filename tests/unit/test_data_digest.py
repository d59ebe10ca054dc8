"""The dataset digest (what each sample sends) and the regular-files-only image reader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vlmhyperbench.datasets import digest as digest_module
from vlmhyperbench.datasets.digest import dataset_digest
from vlmhyperbench.datasets.images import ImageError, read_image
from vlmhyperbench.datasets.manifest import Sample, write_manifest


def dataset(tmp_path: Path) -> list[Sample]:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"a")
    (tmp_path / "images" / "b.png").write_bytes(b"b")
    samples = [
        Sample(id="1", images=["images/a.png"], question="q1", answers=["x"]),
        Sample(id="2", images=["images/a.png"], question="q2", answers=["y"]),
        Sample(id="3", images=["images/b.png"], question="q3", answers=["z"]),
    ]
    write_manifest(tmp_path, samples)
    return samples


def test_answers_change_the_manifest_hash_but_nothing_sent(tmp_path: Path) -> None:
    samples = dataset(tmp_path)
    before = dataset_digest(tmp_path / "manifest.jsonl")
    samples[0].answers = ["other"]
    write_manifest(tmp_path, samples)
    os.utime(tmp_path / "manifest.jsonl", ns=(1, 1))  # a new key even within one mtime tick
    after = dataset_digest(tmp_path / "manifest.jsonl")
    assert before and after
    assert after.requests == before.requests and after.sent == before.sent
    assert after.manifest != before.manifest


def test_a_question_or_image_change_changes_exactly_its_samples(tmp_path: Path) -> None:
    samples = dataset(tmp_path)
    before = dataset_digest(tmp_path / "manifest.jsonl")
    samples[0].question = "q1, edited"
    write_manifest(tmp_path, samples)
    (tmp_path / "images" / "b.png").write_bytes(b"b, changed")
    digest_module.clear_cache()
    after = dataset_digest(tmp_path / "manifest.jsonl")
    assert before and after
    changed = {i for i in before.requests if before.requests[i] != after.requests[i]}
    assert changed == {"1", "3"} and after.sent != before.sent
    unchanged_image = dataset_digest(tmp_path / "manifest.jsonl")
    assert unchanged_image is after  # cached: same manifest, same process


def test_a_missing_manifest_has_no_digest(tmp_path: Path) -> None:
    assert dataset_digest(tmp_path / "manifest.jsonl") is None


@pytest.mark.parametrize("kind", ["directory", "fifo", "device", "dangling", "missing"])
def test_only_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "image.png"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # reading would block forever
    elif kind == "device":
        path.symlink_to("/dev/zero")  # reading would never end
    elif kind == "dangling":
        path.symlink_to(tmp_path / "gone.png")
    expected = {
        "directory": "is a directory",
        "fifo": "is a FIFO",
        "device": "is a device",
        "dangling": "a dangling symbolic link",
        "missing": "image not found",
    }[kind]
    with pytest.raises(ImageError, match=expected) as error:
        read_image(path)
    assert str(path) in str(error.value)
    assert digest_module.image_sha256(path) is None
