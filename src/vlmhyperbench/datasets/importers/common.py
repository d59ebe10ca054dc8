"""What every importer shares: checked paths, image copies, the report, the atomic write."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmhyperbench.datasets.csvfile import csv_encoding
from vlmhyperbench.datasets.csvfile import read_csv_rows as _read_csv_rows
from vlmhyperbench.datasets.manifest import Sample, write_dataset_info, write_manifest
from vlmhyperbench.datasets.staging import staging_dir
from vlmhyperbench.runtime.io import atomic_write_json

log = logging.getLogger("vlmhyperbench.import")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
IMAGES_DIR = "images"
REPORT_NAME = "import_report.json"


class DatasetImportError(ValueError):
    """Input that cannot be imported; the message names the file (and line where there is one)."""


@dataclass
class ImportReport:
    format: str
    source: str
    samples: int = 0
    missing_images: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)


def inside(root: Path, relative: str, where: str) -> Path:
    """``root / relative``, refusing absolute paths and anything that resolves outside ``root``
    (``..``, symlinks)."""
    candidate = Path(relative.strip().replace("\\", "/"))
    resolved_root = root.resolve()
    if candidate.is_absolute() or not (root / candidate).resolve().is_relative_to(resolved_root):
        raise DatasetImportError(
            f"{where}: image path {relative!r} is outside the dataset folder {root}; refused"
        )
    return root / candidate


def read_json(path: Path) -> Any:
    """A JSON file (utf-8, BOM or not); a syntax error or a byte that is not utf-8 names the
    file and line."""
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DatasetImportError(
            f"{path}:{line}: not utf-8 (byte 0x{raw[exc.start]:02x}); JSON files must be utf-8: "
            "re-save it as utf-8 (e.g. `iconv -f cp1251 -t utf-8`)"
        ) from None
    except json.JSONDecodeError as exc:
        raise DatasetImportError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None


def choose_split(splits: list[str], wanted: str | None, where: Path, option: str) -> str:
    """The split of a saved dataset to import: ``wanted``, or the only one there is (``option``
    says how to choose one)."""
    if wanted is None:
        if len(splits) != 1:
            raise DatasetImportError(f"{where}: several splits {splits}; {option}")
        return splits[0]
    if wanted not in splits:
        raise DatasetImportError(f"{where}: no split {wanted!r}; known: {splits}")
    return wanted


def images_and_jsons(source: Path) -> tuple[Path, Path]:
    """The ``images/`` and ``jsons/`` folders of the paired layouts (field JSON, bundles)."""
    image_dir, json_dir = source / "images", source / "jsons"
    for folder in (json_dir, image_dir):
        if not folder.is_dir():
            raise DatasetImportError(f"{folder}: folder not found (expected images/ and jsons/)")
    return image_dir, json_dir


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


class ImageCopier:
    """Places source images under ``images/`` of the dataset being built (hard link, or copy
    across file systems) and remembers which samples point at a missing file."""

    def __init__(self, staging: Path, report: ImportReport) -> None:
        self.staging = staging
        self.report = report
        self._placed: dict[Path, str] = {}

    def add(self, source: Path, destination: str, sample_id: str) -> str:
        """Return the manifest path of ``source``; a missing source is reported for the sample
        and the sample is kept (its prediction then records the error)."""
        relative = f"{IMAGES_DIR}/{destination}"
        if not source.is_file():
            self.report.missing_images[sample_id] = str(source)
            self.report.warn(f"sample {sample_id!r}: image not found: {source}")
            return relative
        if source in self._placed:
            return self._placed[source]
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
        self._placed[source] = relative
        return relative


def read_csv_rows(
    path: Path,
    required: tuple[str, ...],
    delimiter: str = ";",
    encoding: str | None = None,
    report: ImportReport | None = None,
) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of an annotation CSV, in ``encoding`` or the detected one (a detected non-utf-8
    encoding is noted in the import report)."""
    used = csv_encoding(path, encoding, error=DatasetImportError)
    if encoding is None and used != "utf-8-sig" and report is not None:
        report.warn(f"{path}: not utf-8; read as {used} (detected; set `encoding` to override)")
    return _read_csv_rows(path, required, delimiter, error=DatasetImportError, encoding=used)


def finish(
    staging: Path,
    samples: list[Sample],
    report: ImportReport,
    name: str,
    version: str,
    options: dict[str, Any],
) -> None:
    if not samples:
        raise DatasetImportError(f"{report.source}: no samples found")
    report.samples = len(samples)
    write_manifest(staging, samples)
    atomic_write_json(staging / REPORT_NAME, report.__dict__)
    write_dataset_info(
        staging,
        name,
        version,
        extra={"import": {"format": report.format, "source": report.source, "options": options}},
    )


__all__ = [
    "DatasetImportError",
    "ImageCopier",
    "ImportReport",
    "finish",
    "images_and_jsons",
    "inside",
    "is_image",
    "read_csv_rows",
    "read_json",
    "staging_dir",
]
