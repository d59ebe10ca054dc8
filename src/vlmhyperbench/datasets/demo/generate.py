"""Writing a demo dataset: images, ``manifest.jsonl`` and ``dataset.json``, all or nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vlmhyperbench.datasets.demo.distortions import SUBSETS, apply_distortion, check_subsets
from vlmhyperbench.datasets.demo.registry import DOC_CLASSES, check_doc_classes, make_document
from vlmhyperbench.datasets.demo.render import render_page
from vlmhyperbench.datasets.demo.samples import Kind, bundle_sample, check_kind, make_samples
from vlmhyperbench.datasets.demo.seeding import derive_seed
from vlmhyperbench.datasets.manifest import Sample, write_dataset_info, write_manifest
from vlmhyperbench.datasets.staging import staging_dir

GENERATOR_VERSION = 1
"""Bump when the output for the same parameters changes, so cached datasets are remade."""

IMAGES_DIR = "images"
Progress = Callable[[int, int], None]


def generate_demo_dataset(
    out_dir: Path,
    *,
    kind: Kind,
    name: str,
    version: str = "1",
    seed: int = 0,
    per_class: int = 2,
    doc_classes: Sequence[str] = DOC_CLASSES,
    subsets: Sequence[str] = SUBSETS,
    image_width: int = 640,
    progress: Progress | None = None,
) -> list[Sample]:
    """Generate synthetic Russian documents with exact ground truth into ``out_dir``.

    Same arguments give byte-identical files. The dataset is built in a hidden sibling folder
    and renamed into place at the end, replacing any existing ``out_dir``; if anything fails
    the previous ``out_dir`` (or its absence) is left as it was.
    """
    _check_arguments(kind, per_class, doc_classes, subsets)
    params: dict[str, Any] = {
        "module": __package__,
        "generator_version": GENERATOR_VERSION,
        "kind": kind,
        "seed": seed,
        "per_class": per_class,
        "doc_classes": list(doc_classes),
        "subsets": list(subsets),
        "image_width": image_width,
    }
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as staging:
        samples = _write_images(
            staging, kind, seed, per_class, doc_classes, subsets, image_width, progress
        )
        write_manifest(staging, samples)
        write_dataset_info(staging, name, version, extra={"generator": params})
    return samples


def _check_arguments(
    kind: str, per_class: int, doc_classes: Sequence[str], subsets: Sequence[str]
) -> None:
    check_kind(kind)
    if isinstance(doc_classes, str) or isinstance(subsets, str):
        raise TypeError("doc_classes and subsets are sequences of names, not a single string")
    check_doc_classes(doc_classes)
    check_subsets(subsets)
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    for label, names in (("doc_classes", doc_classes), ("subsets", subsets)):
        if not names:
            raise ValueError(f"{label} is empty")
        if len(set(names)) != len(names):
            raise ValueError(f"{label} has duplicates: {list(names)}")


def _write_images(
    root: Path,
    kind: Kind,
    seed: int,
    per_class: int,
    doc_classes: Sequence[str],
    subsets: Sequence[str],
    width: int,
    progress: Progress | None,
) -> list[Sample]:
    (root / IMAGES_DIR).mkdir()
    total = len(doc_classes) * per_class * len(subsets)
    done = 0
    samples: list[Sample] = []
    images: dict[tuple[int, str], list[tuple[str, str]]] = {}  # (index, subset) → pages
    for doc_class in doc_classes:
        for index in range(per_class):
            document = make_document(doc_class, index, seed=seed, width=width)
            page = render_page(document.page)
            for subset in subsets:
                rng = np.random.default_rng(derive_seed(seed, document.doc_id, subset))
                relative = f"{IMAGES_DIR}/{document.doc_id}_{subset}.png"
                apply_distortion(page, subset, rng).save(root / relative, format="PNG")
                samples.extend(make_samples(kind, document, subset, relative))
                images.setdefault((index, subset), []).append((doc_class, relative))
                done += 1
                if progress is not None:
                    progress(done, total)
    if kind == "ordering":  # a bundle: the index-th document of every class
        samples = [
            bundle_sample(f"bundle-{index:03d}", subset, images[(index, subset)], seed)
            for index in range(per_class)
            for subset in subsets
        ]
    return samples
