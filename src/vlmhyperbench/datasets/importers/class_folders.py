"""Classification folders: ``<class>/images/<subset>/*.jpg`` (subsets such as clean, blur, noise,
bright, gray, rotated, spatter)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from vlmhyperbench.datasets.importers.common import (
    DatasetImportError,
    ImageCopier,
    ImportReport,
    is_image,
)
from vlmhyperbench.datasets.manifest import Sample


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classes: list[str] | None = None  # only these class folders (default: all)


def run(source: Path, staging: Path, report: ImportReport, options: Options) -> list[Sample]:
    if not source.is_dir():
        raise DatasetImportError(f"{source}: folder not found")
    class_dirs = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    if options.classes is not None:
        unknown = sorted(set(options.classes) - {p.name for p in class_dirs})
        if unknown:
            raise DatasetImportError(f"{source}: no folder for class(es) {unknown}")
        class_dirs = [p for p in class_dirs if p.name in options.classes]
    copier = ImageCopier(staging, report)
    samples: list[Sample] = []
    for class_dir in class_dirs:
        images_dir = class_dir / "images"
        if not images_dir.is_dir():
            raise DatasetImportError(
                f"{class_dir}: expected <class>/images/<subset>/*.jpg, found no images/ folder"
            )
        for subset_dir in sorted(p for p in images_dir.iterdir() if p.is_dir()):
            for image in sorted(p for p in subset_dir.iterdir() if p.is_file()):
                if not is_image(image):
                    report.warn(f"{image}: not an image file; skipped")
                    continue
                sample_id = f"{class_dir.name}-{subset_dir.name}-{image.stem}"
                destination = f"{class_dir.name}/{subset_dir.name}/{image.name}"
                samples.append(
                    Sample(
                        id=sample_id,
                        images=[copier.add(image, destination, sample_id)],
                        answers=[class_dir.name],
                        doc_class=class_dir.name,
                        question_type="doc_class",
                        subset=subset_dir.name,
                        meta={"source": str(image.relative_to(source))},
                    )
                )
        loose = [p for p in images_dir.iterdir() if p.is_file()]
        if loose:
            report.warn(f"{images_dir}: {len(loose)} file(s) outside a subset folder; skipped")
    return samples
