"""Field-JSON documents (SNILS in VLMHyperBench v0.2): ``images/[<subset>/]N.jpg`` +
``jsons/N.json``, one document a file, in any of the accepted shapes (:data:`ACCEPTED_SHAPES`):

* documented: ``{"fields": {name: {"value": …, "bboxes": …}}}`` (other top-level keys ignored);
* flat: ``{name: value}`` with scalar values (no boxes);
* multi-page: a folder ``jsons/<doc>/`` with one file per page (``1.json``, ``2.json``, …, each
  in either shape above) beside ``images/<doc>/1.jpg``, ``2.jpg``, …: one sample per document
  whose images are the pages in order and whose fields are those of all pages.

Anything else is refused with a message that shows these shapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from vlmhyperbench.datasets.importers.common import (
    DatasetImportError,
    ImageCopier,
    ImportReport,
    images_and_jsons,
    is_image,
    read_json,
)
from vlmhyperbench.datasets.manifest import Sample

ACCEPTED_SHAPES = """accepted shapes:
  documented:  {"fields": {"<name>": {"value": "<value>", "bboxes": [[x0, y0, x1, y1]]}}}
  flat:        {"<name>": "<value>", ...}  (values: string, number, true/false or null)
  multi-page:  a folder jsons/<doc>/ with one file per page (1.json, 2.json, ...) in either
               shape above, the pages in images/<doc>/ (1.jpg, 2.jpg, ...)"""

_SCALAR = (str, int, float, bool, type(None))


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["extraction", "vqa"] = "extraction"
    doc_class: str | None = None
    question: str = "Какое значение поля «{field}»?"  # vqa: one question per field


def read_fields(path: Path) -> dict[str, dict[str, Any]]:
    """``{name: {"value": …, "bboxes": …}}`` from a file in the documented or the flat shape."""
    payload = read_json(path)
    if isinstance(payload, dict) and isinstance(payload.get("fields"), dict):
        fields = payload["fields"]
        for name, entry in fields.items():
            if not isinstance(entry, dict) or "value" not in entry:
                raise DatasetImportError(
                    f"{path}: fields.{name}: expected {{'value': …, 'bboxes': …}}, "
                    f"got {json.dumps(entry, ensure_ascii=False)[:80]}\n{ACCEPTED_SHAPES}"
                )
        return fields
    if isinstance(payload, dict) and payload and "fields" not in payload:
        nested = [name for name, value in payload.items() if not isinstance(value, _SCALAR)]
        if not nested:
            return {name: {"value": value, "bboxes": None} for name, value in payload.items()}
        what = f"key {nested[0]!r} holds a {type(payload[nested[0]]).__name__}"
    elif isinstance(payload, dict):
        what = "an empty object" if not payload else "'fields' is not an object"
    else:
        what = f"a JSON {type(payload).__name__}"
    raise DatasetImportError(f"{path}: not a field-JSON document ({what}); {ACCEPTED_SHAPES}")


def _natural(path: Path) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.stem))


def _merge_pages(folder: Path) -> tuple[list[Path], dict[str, dict[str, Any]], dict[str, int]]:
    """The page files of a multi-page document, their fields merged, and each field's page."""
    pages = sorted(folder.glob("*.json"), key=_natural)
    if not pages:
        raise DatasetImportError(f"{folder}: a multi-page document folder without page files")
    fields: dict[str, dict[str, Any]] = {}
    field_page: dict[str, int] = {}
    for number, page in enumerate(pages, start=1):
        for name, entry in read_fields(page).items():
            if name in fields and fields[name]["value"] != entry["value"]:
                first = pages[field_page[name] - 1].name
                raise DatasetImportError(
                    f"{page}: field {name!r} is {entry['value']!r} here and "
                    f"{fields[name]['value']!r} in {first}; a field must have one value per "
                    "document"
                )
            if name not in fields:
                fields[name], field_page[name] = entry, number
    return pages, fields, field_page


def run(source: Path, staging: Path, report: ImportReport, options: Options) -> list[Sample]:
    image_dir, json_dir = images_and_jsons(source)
    documents = sorted(p for p in json_dir.iterdir() if p.is_dir())
    page_dirs = {image_dir / d.name for d in documents}
    images_by_stem: dict[str, list[tuple[str | None, Path]]] = {}
    for image in sorted(p for p in image_dir.rglob("*") if is_image(p)):
        if image.parent in page_dirs:
            continue
        parent = image.parent.relative_to(image_dir).as_posix()
        subset = None if parent == "." else parent
        images_by_stem.setdefault(image.stem, []).append((subset, image))
    copier = ImageCopier(staging, report)
    samples: list[Sample] = []
    json_files = sorted(json_dir.glob("*.json"), key=lambda p: (len(p.stem), p.stem))
    for json_path in json_files:
        fields = read_fields(json_path)
        variants = images_by_stem.pop(json_path.stem, None) or [
            (None, image_dir / f"{json_path.stem}.jpg")
        ]
        for subset, image in variants:
            base = json_path.stem if subset is None else f"{subset}-{json_path.stem}"
            relative = image.relative_to(image_dir).as_posix()

            def add(sample_id: str, image: Path = image, relative: str = relative) -> list[str]:
                return [copier.add(image, relative, sample_id)]

            meta = {"source": json_path.name}
            samples.extend(_samples(base, add, fields, meta, subset, options))
    for folder in documents:
        pages, fields, field_page = _merge_pages(folder)
        page_images = [_page_image(image_dir / folder.name, page) for page in pages]

        def add_pages(
            sample_id: str, folder: Path = folder, found: list[Path] = page_images
        ) -> list[str]:
            return [copier.add(p, f"{folder.name}/{p.name}", sample_id) for p in found]

        meta = {
            "source": f"{folder.name}/",
            "pages": [page.name for page in pages],
            "field_pages": field_page,
        }
        samples.extend(_samples(folder.name, add_pages, fields, meta, None, options))
    for stem in images_by_stem:
        report.warn(f"{image_dir}: image(s) {stem}.* have no jsons/{stem}.json; skipped")
    return samples


def _page_image(folder: Path, page: Path) -> Path:
    """The image of page file ``page`` (``2.json`` -> ``2.jpg``, ``2.png``, …)."""
    found = sorted(p for p in folder.glob(f"{page.stem}.*") if is_image(p))
    return found[0] if found else folder / f"{page.stem}.jpg"


def _samples(
    base: str,
    add_images: Callable[[str], list[str]],
    fields: dict[str, dict[str, Any]],
    meta: dict[str, Any],
    subset: str | None,
    options: Options,
) -> list[Sample]:
    common = {"doc_class": options.doc_class, "subset": subset}
    if options.kind == "extraction":
        values = {name: str(entry["value"]) for name, entry in fields.items()}
        return [
            Sample(
                id=base,
                images=add_images(base),
                answers=[json.dumps(values, ensure_ascii=False)],
                question_type="fields",
                meta={
                    "fields": list(fields),
                    "bboxes": {n: e.get("bboxes") for n, e in fields.items()},
                    **meta,
                },
                **common,
            )
        ]
    return [
        Sample(
            id=f"{base}-{position}",
            images=add_images(f"{base}-{position}"),
            question=options.question.format(field=name),
            answers=[str(entry["value"])],
            question_type=name,
            meta={"field": name, "bboxes": entry.get("bboxes"), **meta},
            **common,
        )
        for position, (name, entry) in enumerate(fields.items())
    ]
