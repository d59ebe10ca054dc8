"""The document classes the generator knows, and making one seeded document of a class."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from vlmhyperbench.datasets.demo.document import DocField, Document
from vlmhyperbench.datasets.demo.invoice import build_invoice
from vlmhyperbench.datasets.demo.layout import Page
from vlmhyperbench.datasets.demo.passport import build_passport
from vlmhyperbench.datasets.demo.seeding import derive_seed
from vlmhyperbench.datasets.demo.snils import build_snils

DocBuilder = Callable[[random.Random, int], tuple[Page, tuple[DocField, ...]]]

DOC_BUILDERS: dict[str, DocBuilder] = {
    "passport": build_passport,
    "snils": build_snils,
    "invoice": build_invoice,
}
DOC_CLASSES: tuple[str, ...] = tuple(DOC_BUILDERS)


def check_doc_classes(doc_classes: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the unknown classes and listing the known ones."""
    unknown = [name for name in doc_classes if name not in DOC_BUILDERS]
    if unknown:
        raise ValueError(
            f"unknown document class(es) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(DOC_CLASSES)}"
        )


def doc_id(doc_class: str, index: int) -> str:
    return f"{doc_class}-{index:03d}"


def make_document(doc_class: str, index: int, *, seed: int, width: int) -> Document:
    """Document ``index`` of ``doc_class``; it depends only on (seed, class, index, width)."""
    check_doc_classes([doc_class])
    rng = random.Random(derive_seed(seed, doc_class, index))
    page, fields = DOC_BUILDERS[doc_class](rng, width)
    return Document(doc_id(doc_class, index), doc_class, page, fields)
