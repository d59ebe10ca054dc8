"""A Hugging Face ``datasets`` dataset saved with ``save_to_disk``; columns mapped in YAML."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from vlmhyperbench.datasets.importers.common import (
    IMAGES_DIR,
    DatasetImportError,
    ImportReport,
    choose_split,
)
from vlmhyperbench.datasets.manifest import Sample


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: str | None = None  # for a DatasetDict; required when it has several splits
    image: str = "image"
    question: str | None = "question"
    answer: str = "answer"  # a string or a list of strings
    id: str | None = None  # default: the row number
    doc_class: str | None = None
    question_type: str | None = None
    subset: str | None = None


def _load(source: Path, split: str | None) -> Any:
    try:
        import datasets
    except ImportError:
        raise DatasetImportError(
            "the hf_disk format needs the `datasets` package: "
            "pip install 'vlmhyperbench[hf-datasets]'"
        ) from None
    try:
        loaded = datasets.load_from_disk(str(source))
    except FileNotFoundError as exc:
        raise DatasetImportError(
            f"{source}: not a dataset saved with save_to_disk ({exc})"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        loaded = loaded[choose_split(list(loaded), split, source, "set options.split")]
    return loaded


def run(source: Path, staging: Path, report: ImportReport, options: Options) -> list[Sample]:
    table = _load(source, options.split)
    wanted = [options.image, options.answer] + [
        c
        for c in (
            options.question,
            options.id,
            options.doc_class,
            options.question_type,
            options.subset,
        )
        if c
    ]
    missing = [column for column in wanted if column not in table.column_names]
    if missing:
        raise DatasetImportError(
            f"{source}: missing column(s) {missing}; the dataset has {table.column_names}"
        )
    (staging / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    samples = []
    for row_number, row in enumerate(table):
        sample_id = str(row[options.id]) if options.id else str(row_number)
        image = row[options.image]
        relative = f"{IMAGES_DIR}/{row_number:06d}.png"
        if image is None:
            report.missing_images[sample_id] = f"row {row_number}: no image"
            report.warn(f"{source}: row {row_number} ({sample_id}): no image")
        else:
            _save_image(image, staging / relative, f"{source}: row {row_number}")
        answer = row[options.answer]
        answers = [str(a) for a in answer] if isinstance(answer, list) else [str(answer)]
        samples.append(
            Sample(
                id=sample_id,
                images=[relative],
                question=str(row[options.question]) if options.question else "",
                answers=answers,
                doc_class=_optional(row, options.doc_class),
                question_type=_optional(row, options.question_type),
                subset=_optional(row, options.subset),
                meta={"row": row_number},
            )
        )
    return samples


def _optional(row: dict[str, Any], column: str | None) -> str | None:
    return None if column is None or row[column] is None else str(row[column])


def _save_image(image: Any, target: Path, where: str) -> None:
    """PIL images (the ``Image`` feature) are saved as PNG; raw bytes are checked, then saved."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, dict) and image.get("bytes"):
        image = image["bytes"]
    if isinstance(image, bytes):
        try:
            image = Image.open(io.BytesIO(image))
        except UnidentifiedImageError:
            raise DatasetImportError(f"{where}: image bytes are not a readable image") from None
    if not hasattr(image, "save"):
        raise DatasetImportError(
            f"{where}: image column holds {type(image).__name__}, not an image"
        )
    image.save(target, format="PNG")
