"""DejaVu Sans from matplotlib's data folder, and a check that it can draw every character.

matplotlib ships DejaVu Sans in every wheel, so the font is really present after
``pip install`` — unlike system fonts — and it covers Cyrillic, which Pillow's default does not.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import ImageFont

REGULAR_FILE = "DejaVuSans.ttf"
BOLD_FILE = "DejaVuSans-Bold.ttf"


class GlyphCoverageError(ValueError):
    """The font has no glyph for some characters that were about to be drawn."""


@functools.cache
def font_path(bold: bool = False) -> Path:
    """Path of DejaVu Sans (regular or bold) inside matplotlib's data folder."""
    import matplotlib  # imported here: only rendering needs it

    path = (
        Path(matplotlib.get_data_path()) / "fonts" / "ttf" / (BOLD_FILE if bold else REGULAR_FILE)
    )
    if not path.is_file():
        raise FileNotFoundError(f"DejaVu Sans not found at {path}; is matplotlib installed?")
    return path


@functools.cache
def _codepoints(path: Path) -> frozenset[int]:
    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap())


def missing_glyphs(text: str, path: Path) -> list[str]:
    """The distinct characters of ``text`` that the font at ``path`` cannot draw, sorted."""
    covered = _codepoints(Path(path))
    return sorted({char for char in text if ord(char) not in covered})


def check_glyph_coverage(text: str, path: Path | None = None) -> None:
    """Raise :class:`GlyphCoverageError` naming each character the font lacks.

    Without this a missing glyph is drawn as an empty box ("tofu") and the image silently
    disagrees with its ground truth.
    """
    path = Path(path) if path is not None else font_path()
    missing = missing_glyphs(text, path)
    if missing:
        names = ", ".join(f"{char!r} (U+{ord(char):04X})" for char in missing)
        raise GlyphCoverageError(f"font {path} has no glyph for: {names}")


@functools.cache
def load_font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans at ``size`` pixels, with Pillow's basic layout engine.

    The basic engine is chosen explicitly: with libraqm present Pillow would otherwise shape
    text differently, and the same seed would give different pixels on different machines.
    """
    return ImageFont.truetype(str(font_path(bold)), size, layout_engine=ImageFont.Layout.BASIC)
