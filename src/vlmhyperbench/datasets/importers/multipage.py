"""Multi-page bundles (the original RPO tasks): ``images/<sample_id>/*.jpg`` +
``jsons/<sample_id>.json``.

The JSON lists the bundle's pages in their true order, each with its class::

    {"pages": [{"file": "1.jpg", "doc_class": "passport"}, {"file": "2.jpg", "doc_class": "snils"}]}

(``class``/``label`` are accepted for ``doc_class``, ``image`` for ``file``; with ``position``
or ``order`` keys the pages are sorted by them.) ``kind: ordering`` makes one sample per bundle
with the pages shuffled (seeded) and the answer ``[i, j, …]``: the 1-based numbers of the shown
images in their true order. ``kind: classification`` makes one sample per page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from vlmhyperbench.datasets.importers.common import (
    DatasetImportError,
    ImageCopier,
    ImportReport,
    images_and_jsons,
    inside,
    read_json,
)
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.datasets.ordering import order_answer, shuffled_order


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["ordering", "classification"] = "ordering"
    seed: int = 0


def read_pages(path: Path) -> list[dict[str, Any]]:
    payload = read_json(path)
    pages = payload.get("pages") if isinstance(payload, dict) else None
    if not isinstance(pages, list) or not pages:
        raise DatasetImportError(f"{path}: expected an object with a non-empty 'pages' list")
    normalised = []
    for index, page in enumerate(pages):
        file = page.get("file", page.get("image")) if isinstance(page, dict) else None
        doc_class = page.get("doc_class", page.get("class", page.get("label"))) if file else None
        if not file or not doc_class:
            raise DatasetImportError(f"{path}: pages[{index}]: expected 'file' and 'doc_class'")
        position = page.get("position", page.get("order", index + 1))
        normalised.append({"file": str(file), "doc_class": str(doc_class), "position": position})
    return sorted(normalised, key=lambda page: page["position"])


def run(source: Path, staging: Path, report: ImportReport, options: Options) -> list[Sample]:
    image_dir, json_dir = images_and_jsons(source)
    copier = ImageCopier(staging, report)
    samples: list[Sample] = []
    for json_path in sorted(json_dir.glob("*.json")):
        bundle = json_path.stem
        pages = read_pages(json_path)
        paths = [
            copier.add(
                inside(image_dir / bundle, page["file"], str(json_path)),
                f"{bundle}/{page['file']}",
                bundle,
            )
            for page in pages
        ]
        classes = [page["doc_class"] for page in pages]
        if options.kind == "classification":
            for number, (path, doc_class) in enumerate(zip(paths, classes, strict=True), start=1):
                samples.append(
                    Sample(
                        id=f"{bundle}-p{number}",
                        images=[path],
                        answers=[doc_class],
                        doc_class=doc_class,
                        question_type="page_class",
                        meta={"bundle": bundle, "page": number},
                    )
                )
            continue
        shown = shuffled_order(len(pages), options.seed, bundle)
        samples.append(
            Sample(
                id=bundle,
                images=[paths[i] for i in shown],
                answers=[order_answer(shown)],
                question_type="page_order",
                meta={
                    "bundle": bundle,
                    "page_classes": [classes[i] for i in shown],
                    "true_classes": classes,
                },
            )
        )
    return samples
