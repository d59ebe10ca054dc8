"""Importers from other dataset layouts into the manifest format, one module per format.

Each module has an ``Options`` model (the registry entry's ``options:``) and
``run(source, staging, report, options) -> list[Sample]``; :func:`import_dataset` validates the
options, builds the dataset in a staging folder and swaps it into place only when complete.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vlmhyperbench.datasets.importers import (
    class_folders,
    field_json,
    hf_disk,
    multipage,
    mws_vision,
    vqa_csv,
)
from vlmhyperbench.datasets.importers.common import (
    DatasetImportError,
    ImportReport,
    finish,
    staging_dir,
)
from vlmhyperbench.datasets.manifest import Sample

IMPORTERS: dict[str, types.ModuleType] = {
    "vqa_csv": vqa_csv,
    "field_json": field_json,
    "class_folders": class_folders,
    "multipage": multipage,
    "hf_disk": hf_disk,
    "mws_vision": mws_vision,
}


def import_dataset(
    format: str,
    source: str | Path,
    out_dir: str | Path,
    *,
    name: str,
    version: str = "1",
    options: dict[str, Any] | None = None,
) -> tuple[list[Sample], ImportReport]:
    if format not in IMPORTERS:
        raise DatasetImportError(
            f"unknown format {format!r}; known formats: {', '.join(sorted(IMPORTERS))}"
        )
    module = IMPORTERS[format]
    try:
        parsed = module.Options.model_validate(options or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DatasetImportError(f"options.{where}: {first['msg']} (format {format})") from None
    source = Path(source).expanduser()
    if not source.exists():
        raise DatasetImportError(f"{source}: not found")
    report = ImportReport(format=format, source=str(source))
    with staging_dir(Path(out_dir)) as staging:
        samples = module.run(source, staging, report, parsed)
        finish(staging, samples, report, name, version, parsed.model_dump())
    return samples, report


__all__ = ["IMPORTERS", "DatasetImportError", "ImportReport", "import_dataset"]
