"""Synthetic Russian documents (passport, СНИЛС, invoice) with exact ground truth.

``generate_demo_dataset`` writes a seeded dataset in the manifest format: page images in
several distortion subsets, plus VQA, classification or OCR samples about them.
"""

from vlmhyperbench.datasets.demo.checksums import is_valid_inn, is_valid_snils
from vlmhyperbench.datasets.demo.distortions import SUBSETS
from vlmhyperbench.datasets.demo.fonts import GlyphCoverageError, check_glyph_coverage
from vlmhyperbench.datasets.demo.generate import GENERATOR_VERSION, generate_demo_dataset
from vlmhyperbench.datasets.demo.registry import DOC_CLASSES, make_document
from vlmhyperbench.datasets.demo.samples import KINDS

__all__ = [
    "DOC_CLASSES",
    "GENERATOR_VERSION",
    "KINDS",
    "SUBSETS",
    "GlyphCoverageError",
    "check_glyph_coverage",
    "generate_demo_dataset",
    "is_valid_inn",
    "is_valid_snils",
    "make_document",
]
