"""MWS-Vision-Bench (``MTSAIR/MWS-Vision-Bench``): ``vlmhb dataset import mws_vision PATH OUT``.

PATH is the validation split as it lands on disk (see :mod:`.shapes`): the dataset repository's
parquet files, the arrow files of a ``load_dataset`` cache, a ``save_to_disk`` folder, an image
folder with ``metadata.jsonl``, or the official runner's local mode (JSON files plus
``-o base_path=IMAGE_FOLDER``). Every shape gives the same manifest.

**The manifest contract** (what the ``mws_*`` metrics and the tasks read). One sample per
question of the five categories; questions of any other ``type`` are left out with a warning,
as the official evaluation leaves them out.

=================  =================================================================
``id``             the official ``id`` (as a string)
``images``         ``["images/<sha256[:16]>.jpg|png"]``: the page (see :mod:`.images`)
``question``       the official ``question``, the whole instruction the official runner
                   sends (it has no prompt of its own)
``question_type``  the official ``type``, verbatim: ``full-page OCR ru``, ``document
                   parsing ru``, ``text grounding ru``, ``key information extraction ru``,
                   ``reasoning VQA ru`` (the tasks filter on it)
``doc_class``      the official ``dataset_name`` (e.g. ``business``)
``subset``         the split, ``validation`` unless ``-o split=…``
``answers``        readable references: the page text (OCR), the Markdown (parsing), the
                   box as ``"[x1, y1, x2, y2]"`` (grounding), the KIE JSON text, every
                   accepted VQA answer
``meta.doc_id``    the page (its file name without suffix): questions on one page share it,
                   and the bootstrap resamples pages
``meta.mws``       what the official evaluation reads, for the metrics:

                   * ``type``: the official ``type``; ``category``: ``ocr``, ``markdown``,
                     ``grounding``, ``kie`` or ``vqa``; ``dataset_name``;
                   * ``answers``: the official ``answers`` list as the hub holds it — a
                     list of strings (a number in a local JSON file becomes its ``str``; a
                     KIE reference that is an object stays an object, ``null`` stays) —
                     pass it to the official rule as it is: OCR ``answers[0]`` (one
                     reference), Markdown ``answers[0]`` (one), grounding the four
                     coordinates (strings; any other count scores 0), KIE ``answers[0]``
                     (a JSON string, or an object), VQA the accepted answers;
                   * ``box`` (grounding): the four coordinates as floats, ``null`` when they
                     are not four numbers;
                   * ``kie`` (KIE): the reference parsed as JSON, ``null`` when it is not
                     JSON (the official scorer then tries a Python literal).
=================  =================================================================

Refused, naming the file, the row (or entry, or line) and the key: a missing column or key, a
``type`` that is not a string, ``answers`` that is not a list, an OCR, Markdown or KIE question
without exactly one reference, a reference of the wrong type, an unreadable image, an ``id``
used twice. A missing image file does not stop the import (``import_report.json``).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from vlmhyperbench.datasets.importers.common import IMAGES_DIR, DatasetImportError, ImportReport
from vlmhyperbench.datasets.importers.mws_vision.images import ImageMode, PageWriter
from vlmhyperbench.datasets.importers.mws_vision.records import CATEGORIES, category_of, to_sample
from vlmhyperbench.datasets.importers.mws_vision.shapes import SourceRow, detect, read_rows
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.runtime.io import stable_hash

log = logging.getLogger("vlmhyperbench.import")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: str = "validation"  # the samples' subset
    images: ImageMode = "official"  # official: as the official runner sends them; or original
    base_path: str | None = None  # local mode: the image folder (default: the JSON's folder)
    hub_split: str | None = None  # files of several splits: which one


def run(source: Path, staging: Path, report: ImportReport, options: Options) -> list[Sample]:
    kind, files = detect(source)
    log.info("%s: read as %s (%d file(s))", source, kind, len(files))
    base = _base_path(options.base_path, kind)
    writer = PageWriter(staging, options.images)
    samples: list[Sample] = []
    first_seen: dict[str, str] = {}
    left_out: Counter[str] = Counter()
    for row in read_rows(kind, files, base, options.hub_split):
        category = category_of(row.values, row.where)
        if category is None:
            left_out[row.values["type"]] += 1
            continue
        image = _place(row, writer, report)
        sample = to_sample(row.values, category, image, options.split, row.where, report)
        if sample.id in first_seen:
            raise DatasetImportError(
                f"{row.where}: id {sample.id!r} is used twice (first at {first_seen[sample.id]})"
            )
        first_seen[sample.id] = row.where
        samples.append(sample)
    for kind_name, count in sorted(left_out.items()):
        report.warn(
            f"{source}: {count} question(s) of type {kind_name!r} left out; the benchmark's "
            f"five categories are {', '.join(CATEGORIES)}"
        )
    return samples


def _base_path(base_path: str | None, kind: str) -> Path | None:
    if base_path is None:
        return None
    if kind != "local":
        raise DatasetImportError(
            f"options.base_path: only the official runner's local mode (JSON files) has an "
            f"image folder; this source is {kind}"
        )
    base = Path(base_path).expanduser()
    if not base.is_dir():
        raise DatasetImportError(f"options.base_path: {base} is not a folder")
    return base


def _place(row: SourceRow, writer: PageWriter, report: ImportReport) -> str:
    """The row's page in the dataset; a missing one is reported and named after the sample."""
    image = row.image
    if isinstance(image, Path) and image.is_file():
        image = image.read_bytes()
    if isinstance(image, bytes):
        return writer.add(image, row.where)
    sample_id = str(row.values.get("id"))
    report.missing_images[sample_id] = str(image) if image else f"{row.where}: no image"
    report.warn(f"{row.where}: image not found: {image or 'the row has none'}")
    return f"{IMAGES_DIR}/missing-{stable_hash(sample_id, length=16)}.jpg"


__all__ = ["CATEGORIES", "Options", "run"]
