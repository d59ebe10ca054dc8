"""Manifest samples for one document image, per task kind."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal, get_args

from vlmhyperbench.datasets.demo.document import Document
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.datasets.ordering import order_answer, shuffled_order

Kind = Literal["vqa", "classification", "ocr", "extraction", "ordering"]
KINDS: tuple[str, ...] = get_args(Kind)


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")


CLEAN = "clean"


def robustness_meta(sample_id: str, subset: str) -> dict[str, object]:
    """``origin`` (the clean sample's id) and ``severity`` for a distorted copy; nothing for a
    clean one. The demo's distortions have one strength each: severity 1 (clean is 0)."""
    if subset == CLEAN:
        return {}
    return {"origin": sample_id.replace(f"-{subset}", f"-{CLEAN}", 1), "severity": 1}


def make_samples(kind: Kind, document: Document, subset: str, image: str) -> list[Sample]:
    """Samples asking about ``image`` (relative path) of ``document`` in ``subset``.

    vqa: one per field; classification: one asking for the class (the task prompt holds the
    question, so it is empty); ocr: one whose answer is the full page text. ``meta.doc_id``
    names the page (its questions and distorted copies share it: the bootstrap resamples
    pages); a distorted copy has ``meta.origin`` and ``meta.severity``.
    """
    check_kind(kind)
    base = f"{document.doc_id}-{subset}"
    common = {"images": [image], "doc_class": document.doc_class, "subset": subset}
    if kind == "vqa":
        return [
            Sample(
                id=f"{base}-{field.key}",
                question=field.question,
                answers=[field.value],
                question_type=field.key,
                meta={
                    "doc_id": document.doc_id,
                    "field": field.label,
                    **robustness_meta(f"{base}-{field.key}", subset),
                },
                **common,
            )
            for field in document.fields
        ]
    if kind == "ordering":
        return []  # bundles span documents: see bundle_sample
    if kind == "extraction":
        values = {field.label: field.value for field in document.fields}
        return [
            Sample(
                id=base,
                answers=[json.dumps(values, ensure_ascii=False)],
                question_type="fields",
                meta={
                    "doc_id": document.doc_id,
                    "fields": list(values),
                    **robustness_meta(base, subset),
                },
                **common,
            )
        ]
    if kind == "classification":
        answers, question_type = [document.doc_class], "doc_class"
    else:
        answers, question_type = [document.text], "full_text"
    return [
        Sample(
            id=base,
            answers=answers,
            question_type=question_type,
            meta={"doc_id": document.doc_id, **robustness_meta(base, subset)},
            **common,
        )
    ]


def bundle_sample(
    bundle_id: str, subset: str, pages: Sequence[tuple[str, str]], seed: int
) -> Sample:
    """One ordering sample: ``pages`` = (doc_class, image) in the true order (the order of the
    dataset's doc_classes), shown shuffled; the answer lists the shown images in true order."""
    shown = shuffled_order(len(pages), seed, f"{bundle_id}-{subset}")
    return Sample(
        id=f"{bundle_id}-{subset}",
        images=[pages[i][1] for i in shown],
        answers=[order_answer(shown)],
        question_type="page_order",
        subset=subset,
        meta={
            "bundle": bundle_id,
            "page_classes": [pages[i][0] for i in shown],
            "true_classes": [doc_class for doc_class, _ in pages],
            **robustness_meta(f"{bundle_id}-{subset}", subset),
        },
    )
