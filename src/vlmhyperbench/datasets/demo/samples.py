"""Manifest samples for one document image, per task kind."""

from __future__ import annotations

from typing import Literal, get_args

from vlmhyperbench.datasets.demo.document import Document
from vlmhyperbench.datasets.manifest import Sample

Kind = Literal["vqa", "classification", "ocr"]
KINDS: tuple[str, ...] = get_args(Kind)


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")


def make_samples(kind: Kind, document: Document, subset: str, image: str) -> list[Sample]:
    """Samples asking about ``image`` (relative path) of ``document`` in ``subset``.

    vqa: one per field; classification: one asking for the class (the task prompt holds the
    question, so it is empty); ocr: one whose answer is the full page text.
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
                meta={"doc_id": document.doc_id, "field": field.label},
                **common,
            )
            for field in document.fields
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
            meta={"doc_id": document.doc_id},
            **common,
        )
    ]
