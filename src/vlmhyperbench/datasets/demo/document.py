"""A generated document: its laid-out page and the fields a question can ask about."""

from __future__ import annotations

from dataclasses import dataclass

from vlmhyperbench.datasets.demo.layout import Page


@dataclass(frozen=True)
class DocField:
    key: str  # stable English key, used as the sample's question_type
    label: str  # the field's Russian label
    value: str  # exactly as printed on the page
    question: str  # Russian question whose answer is ``value``


@dataclass(frozen=True)
class Document:
    doc_id: str
    doc_class: str
    page: Page
    fields: tuple[DocField, ...]

    @property
    def text(self) -> str:
        """Full page text as rendered, lines joined by newlines."""
        return self.page.text
