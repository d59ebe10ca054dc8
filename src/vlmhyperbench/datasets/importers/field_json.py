"""Field-JSON documents: ``images/[<subset>/]N.jpg`` + ``jsons/N.json`` shaped
``{"fields": {name: {"value": …, "bboxes": …}}}`` (SNILS in VLMHyperBench v0.2)."""

from __future__ import annotations

import json
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


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["extraction", "vqa"] = "extraction"
    doc_class: str | None = None
    question: str = "Какое значение поля «{field}»?"  # vqa: one question per field


def read_fields(path: Path) -> dict[str, dict[str, Any]]:
    payload = read_json(path)
    fields = payload.get("fields") if isinstance(payload, dict) else None
    if not isinstance(fields, dict):
        raise DatasetImportError(f"{path}: expected an object with a 'fields' mapping")
    for name, entry in fields.items():
        if not isinstance(entry, dict) or "value" not in entry:
            raise DatasetImportError(f"{path}: fields.{name}: expected {{'value': …, 'bboxes': …}}")
    return fields


def run(source: Path, staging: Path, report: ImportReport, options: Options) -> list[Sample]:
    image_dir, json_dir = images_and_jsons(source)
    images_by_stem: dict[str, list[tuple[str | None, Path]]] = {}
    for image in sorted(p for p in image_dir.rglob("*") if is_image(p)):
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
            common = {"doc_class": options.doc_class, "subset": subset}
            if options.kind == "extraction":
                values = {name: str(entry["value"]) for name, entry in fields.items()}
                samples.append(
                    Sample(
                        id=base,
                        images=[copier.add(image, relative, base)],
                        answers=[json.dumps(values, ensure_ascii=False)],
                        question_type="fields",
                        meta={
                            "fields": list(fields),
                            "bboxes": {n: e.get("bboxes") for n, e in fields.items()},
                            "source": json_path.name,
                        },
                        **common,
                    )
                )
                continue
            for position, (name, entry) in enumerate(fields.items()):
                sample_id = f"{base}-{position}"
                samples.append(
                    Sample(
                        id=sample_id,
                        images=[copier.add(image, relative, sample_id)],
                        question=options.question.format(field=name),
                        answers=[str(entry["value"])],
                        question_type=name,
                        meta={
                            "field": name,
                            "bboxes": entry.get("bboxes"),
                            "source": json_path.name,
                        },
                        **common,
                    )
                )
    for stem in images_by_stem:
        report.warn(f"{image_dir}: image(s) {stem}.* have no jsons/{stem}.json; skipped")
    return samples
