"""The dataset manifest contract (``data/{dataset}/manifest.jsonl`` + ``dataset.json``).

One sample a line::

    {"id", "images": [relative paths], "question", "answers": [str],
     "doc_class", "question_type", "subset", "meta": {}}

``dataset.json`` holds the name, version, the manifest schema version and the sha256 of
every file, so a dataset's content can be fingerprinted and checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vlmhyperbench.runtime.io import atomic_write, atomic_write_json, file_sha256, stable_hash

MANIFEST_NAME = "manifest.jsonl"
DATASET_INFO_NAME = "dataset.json"
MANIFEST_SCHEMA_VERSION = 1


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and line."""


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    images: list[str] = Field(default_factory=list)
    question: str = ""
    answers: list[str] = Field(default_factory=list)
    doc_class: str | None = None
    question_type: str | None = None
    subset: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("images")
    @classmethod
    def _relative_images(cls, images: list[str]) -> list[str]:
        for image in images:
            # The string checks first: Path() for every image of 100k samples costs seconds.
            if image.startswith("/") or (".." in image and ".." in Path(image).parts):
                raise ValueError(f"image path must be relative to the dataset folder: {image!r}")
        return images


def write_manifest(dataset_dir: str | Path, samples: Iterable[Sample]) -> Path:
    """Write ``manifest.jsonl`` atomically; ids must be unique."""
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / MANIFEST_NAME
    seen: set[str] = set()
    with atomic_write(path) as handle:
        for sample in samples:
            if sample.id in seen:
                raise ManifestError(f"{path}: duplicate sample id {sample.id!r}")
            seen.add(sample.id)
            handle.write(sample.model_dump_json() + "\n")
    return path


def read_manifest(path: str | Path) -> list[Sample]:
    """Read and validate a manifest; an error names the file and the 1-based line."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    samples: list[Sample] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: manifest not found") from exc
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            sample = Sample.model_validate_json(line)
        except ValidationError as exc:
            if exc.errors()[0]["type"] == "json_invalid":
                try:
                    json.loads(line)
                except json.JSONDecodeError as decode_error:
                    raise ManifestError(
                        f"{path}:{lineno}: not valid JSON: {decode_error.msg}"
                    ) from exc
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "<sample>"
            raise ManifestError(f"{path}:{lineno}: {where}: {first['msg']}") from exc
        if sample.id in seen:
            raise ManifestError(f"{path}:{lineno}: duplicate sample id {sample.id!r}")
        seen.add(sample.id)
        samples.append(sample)
    return samples


def write_dataset_info(
    dataset_dir: str | Path, name: str, version: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Hash every file under the dataset folder and write ``dataset.json`` atomically."""
    dataset_dir = Path(dataset_dir)
    files = {
        p.relative_to(dataset_dir).as_posix(): file_sha256(p)
        for p in sorted(dataset_dir.rglob("*"))
        if p.is_file() and p.name != DATASET_INFO_NAME and not p.name.startswith(".")
    }
    info = {
        "name": name,
        "version": version,
        "manifest_schema": MANIFEST_SCHEMA_VERSION,
        "content_sha256": stable_hash(files, length=64),
        "files": files,
        **(extra or {}),
    }
    atomic_write_json(dataset_dir / DATASET_INFO_NAME, info)
    return info
