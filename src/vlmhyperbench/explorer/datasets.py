"""The datasets a run read: their folders, found by the names its provenance records, and their
manifests, read on first use (through the manifest contract's own reader).

A dataset ``NAME`` is the folder ``DIR/NAME`` (with ``manifest.jsonl``) of a data folder
``DIR``, or ``DIR`` itself when its ``dataset.json`` is named ``NAME``. The default data folder
is ``data/`` beside the results folder (the workflow's layout). A manifest whose sha256 differs
from the one the run recorded is shown with a warning: its images may not be what was sent.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from vlmhyperbench.datasets.manifest import (
    DATASET_INFO_NAME,
    MANIFEST_NAME,
    ManifestError,
    Sample,
    read_manifest,
)
from vlmhyperbench.explorer.catalog import Catalog
from vlmhyperbench.runtime.io import file_sha256


def default_data_dirs(results_root: Path) -> list[Path]:
    return [results_root.resolve().parent / "data"]


def _named(folder: Path) -> str | None:
    try:
        info = json.loads((folder / DATASET_INFO_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info.get("name") if isinstance(info, dict) else None


def find_dataset(name: str, data_dirs: list[Path]) -> Path | None:
    """The folder of dataset ``name`` under the first data folder that has it (resolved)."""
    for data_dir in data_dirs:
        if (data_dir / name / MANIFEST_NAME).is_file():
            return (data_dir / name).resolve()
        if (data_dir / MANIFEST_NAME).is_file() and _named(data_dir) == name:
            return data_dir.resolve()
    return None


class Datasets:
    """Per task: its dataset's folder and manifest (read once, on first use)."""

    def __init__(self, catalog: Catalog, data_dirs: list[Path]) -> None:
        self.catalog = catalog
        self.folders: dict[str, Path] = {}  # dataset name → its folder
        self.warnings: list[str] = []
        self._samples: dict[str, dict[str, Sample]] = {}
        self._lock = threading.Lock()
        for task, record in sorted(catalog.datasets.items()):
            if record.name in self.folders:
                continue
            folder = find_dataset(record.name, data_dirs)
            if folder is None:
                where = ", ".join(str(d) for d in data_dirs)
                self.warnings.append(f"dataset {record.name} ({task}): not found under {where}")
                continue
            self.folders[record.name] = folder
            sha = record.manifest_sha256
            if sha and file_sha256(folder / MANIFEST_NAME) != sha:
                self.warnings.append(
                    f"dataset {record.name}: {folder / MANIFEST_NAME} differs from the manifest "
                    "the run read (sha256); questions and images may not be what was sent"
                )

    def name(self, task: str) -> str | None:
        """The task's dataset, where its folder was found."""
        record = self.catalog.datasets.get(task)
        return record.name if record is not None and record.name in self.folders else None

    def samples(self, task: str) -> dict[str, Sample]:
        """The task's manifest records by id ({} without a dataset folder or manifest)."""
        with self._lock:
            if task not in self._samples:
                self._samples[task] = self._read(task)
            return self._samples[task]

    def _read(self, task: str) -> dict[str, Sample]:
        name = self.name(task)
        if name is None:
            return {}
        try:
            return {s.id: s for s in read_manifest(self.folders[name] / MANIFEST_NAME)}
        except ManifestError as exc:
            self.warnings.append(f"dataset {name}: {exc}; no images or references shown")
            return {}
