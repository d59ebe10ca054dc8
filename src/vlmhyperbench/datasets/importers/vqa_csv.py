"""The original VLMHyperBench VQA layout: ``annotation.csv`` (``;``, utf-8 with BOM, or an Excel
export in cp1251: detected, or the ``encoding`` option) + ``images/``.

Columns: ``data_index;split;image_path;question;answer;doc_class;question_type;answer_bbox``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from vlmhyperbench.datasets.importers.common import (
    DatasetImportError,
    ImageCopier,
    ImportReport,
    inside,
    read_csv_rows,
)
from vlmhyperbench.datasets.manifest import Sample

COLUMNS = (
    "data_index",
    "split",
    "image_path",
    "question",
    "answer",
    "doc_class",
    "question_type",
    "answer_bbox",
)


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotation: str = "annotation.csv"
    split: str | None = None  # keep only rows of this split
    subset: str | None = None  # the subset every sample gets (the layout has none)
    encoding: str | None = None  # e.g. cp1251; default: utf-8, else detected


def run(source: Path, staging: Path, report: ImportReport, options: Options) -> list[Sample]:
    csv_path = source if source.is_file() else source / options.annotation
    root = csv_path.parent
    rows = [
        (line, row)
        for line, row in read_csv_rows(csv_path, COLUMNS, encoding=options.encoding, report=report)
        if options.split is None or row["split"].strip() == options.split
    ]
    counts = Counter(row["data_index"].strip() for _, row in rows)
    seen: Counter[str] = Counter()
    copier = ImageCopier(staging, report)
    samples = []
    for line, row in rows:
        where = f"{csv_path}:{line}"
        index = row["data_index"].strip()
        if not index:
            raise DatasetImportError(f"{where}: empty data_index")
        seen[index] += 1
        sample_id = index if counts[index] == 1 else f"{index}-{seen[index]}"
        image = _find_image(root, row["image_path"], where)
        relative = image.relative_to(root).as_posix()
        if relative.startswith("images/"):
            relative = relative.removeprefix("images/")
        samples.append(
            Sample(
                id=sample_id,
                images=[copier.add(image, relative, sample_id)],
                question=row["question"].strip(),
                answers=[row["answer"].strip()],
                doc_class=row["doc_class"].strip() or None,
                question_type=row["question_type"].strip() or None,
                subset=options.subset,
                meta={
                    "data_index": index,
                    "split": row["split"].strip(),
                    "answer_bbox": row["answer_bbox"].strip(),
                    "source_line": line,
                },
            )
        )
    return samples


def _find_image(root: Path, image_path: str, where: str) -> Path:
    """``image_path`` as written, else under ``images/`` (both layouts occur)."""
    if not image_path.strip():
        raise DatasetImportError(f"{where}: empty image_path")
    direct = inside(root, image_path, where)
    if direct.exists():
        return direct
    under_images = inside(root, f"images/{image_path.strip()}", where)
    return under_images if under_images.exists() else direct
