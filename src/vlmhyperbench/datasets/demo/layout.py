"""Page layout: rows of text cells and simple shapes, placed in pixels before any drawing.

Layout is separate from drawing so the ground-truth text of a page is known exactly — it is
the text of the placed rows, line by line — and the renderer only paints what is placed here.
Coordinates passed to :class:`PageBuilder` are in design units of a 640-wide page and are
scaled to the real image width; measurements use the very fonts the renderer draws with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from PIL import ImageFont

from vlmhyperbench.datasets.demo.fonts import load_font

DESIGN_WIDTH = 640
MIN_WIDTH = 320
MAX_WIDTH = 4096

Color = tuple[int, int, int]
Align = Literal["left", "right", "center"]


class LayoutError(ValueError):
    """Text that does not fit the page or overlaps its neighbour."""


@dataclass(frozen=True)
class TextStyle:
    size: float  # design units
    bold: bool = False
    color: Color = (20, 20, 20)


@dataclass(frozen=True)
class Cell:
    """Text to place; ``x`` is its left edge, right edge or centre, as ``align`` says."""

    text: str
    x: float
    style: TextStyle
    align: Align = "left"


@dataclass(frozen=True)
class PlacedCell:
    text: str
    x: int  # left edge, pixels
    baseline: int  # pixels
    size: int  # pixels
    bold: bool
    color: Color


@dataclass(frozen=True)
class PlacedRow:
    cells: tuple[PlacedCell, ...]

    @property
    def text(self) -> str:
        """The row as ground truth: its cells left to right, separated by one space."""
        return " ".join(cell.text for cell in sorted(self.cells, key=lambda c: c.x))


@dataclass(frozen=True)
class Rect:
    box: tuple[float, float, float, float]  # pixels: x0, y0, x1, y1
    fill: Color | None = None
    outline: Color | None = None
    width: int = 1


@dataclass(frozen=True)
class Polyline:
    points: tuple[tuple[float, float], ...]  # pixels
    color: Color
    width: int = 1


Shape = Rect | Polyline


@dataclass(frozen=True)
class Page:
    width: int
    height: int
    background: Color
    shapes: tuple[Shape, ...]  # drawn first, in order
    rows: tuple[PlacedRow, ...]  # drawn over the shapes

    @property
    def text(self) -> str:
        """Full page text as rendered, one line per row."""
        return "\n".join(row.text for row in self.rows)


@dataclass
class PageBuilder:
    """Places rows top to bottom; ``y`` is the top of the next row, in pixels."""

    width: int
    background: Color
    margin: float = 32.0
    y: float = 0.0
    underlay: list[Shape] = field(default_factory=list)
    shapes: list[Shape] = field(default_factory=list)
    rows: list[PlacedRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise ValueError(f"image width must be {MIN_WIDTH}..{MAX_WIDTH} px, got {self.width}")
        self.y = self.px(self.margin)

    @property
    def scale(self) -> float:
        return self.width / DESIGN_WIDTH

    @property
    def left(self) -> float:
        return self.px(self.margin)

    @property
    def right(self) -> float:
        return self.width - self.px(self.margin)

    def px(self, units: float) -> float:
        return units * self.scale

    def font(self, style: TextStyle) -> ImageFont.FreeTypeFont:
        return load_font(self.font_size(style), style.bold)

    def font_size(self, style: TextStyle) -> int:
        return max(6, round(self.px(style.size)))

    def measure(self, text: str, style: TextStyle) -> float:
        return self.font(style).getlength(text)

    def space(self, units: float) -> None:
        self.y += self.px(units)

    def row(self, *cells: Cell, leading: float = 1.5) -> tuple[float, float]:
        """Place one row of cells at ``y``; return its top and bottom in pixels."""
        if not cells:
            raise ValueError("a row needs at least one cell")
        top = self.y
        fonts = [self.font(cell.style) for cell in cells]
        ascent = max(font.getmetrics()[0] for font in fonts)
        descent = max(font.getmetrics()[1] for font in fonts)
        height = max(self.font_size(cell.style) for cell in cells) * leading
        baseline = round(top + (height - ascent - descent) / 2 + ascent)
        placed = tuple(self._place(cell, baseline) for cell in cells)
        self._check_fits(placed)
        self.rows.append(PlacedRow(placed))
        self.y = top + height
        return top, self.y

    def field(
        self,
        label: str,
        value: str,
        *,
        label_x: float,
        value_x: float,
        label_style: TextStyle,
        value_style: TextStyle,
        leading: float = 1.5,
    ) -> None:
        """A label and its value; a long value wraps onto rows of its own below."""
        lines = self.wrap(value, value_style, self.right - self.px(value_x))
        self.row(
            Cell(label, label_x, label_style), Cell(lines[0], value_x, value_style), leading=leading
        )
        for line in lines[1:]:
            self.row(Cell(line, value_x, value_style), leading=leading)

    def wrap(self, text: str, style: TextStyle, max_width: float) -> list[str]:
        """Greedy word wrap; a single word wider than ``max_width`` stays whole."""
        lines: list[str] = []
        for word in text.split():
            candidate = f"{lines[-1]} {word}" if lines else word
            if lines and self.measure(candidate, style) <= max_width:
                lines[-1] = candidate
            else:
                lines.append(word)
        return lines or [""]

    def rule(self, color: Color = (120, 120, 120), width: float = 1.0) -> None:
        """A horizontal line between the margins at ``y``."""
        line_width = max(1, round(self.px(width)))
        self.shapes.append(Polyline(((self.left, self.y), (self.right, self.y)), color, line_width))

    def table(
        self,
        columns: Sequence[tuple[float, Align]],
        header: Sequence[str],
        body: Sequence[Sequence[str]],
        *,
        header_style: TextStyle,
        body_style: TextStyle,
        header_fill: Color = (232, 232, 232),
        line_color: Color = (110, 110, 110),
    ) -> None:
        """A ruled table between the margins; ``columns`` are (x, align) per column."""
        top = self.y
        self.row(*self._cells(columns, header, header_style))
        self.shapes.append(Rect((self.left, top, self.right, self.y), fill=header_fill))
        for values in body:
            self.rule(line_color)
            self.row(*self._cells(columns, values, body_style))
        self.shapes.append(Rect((self.left, top, self.right, self.y), outline=line_color))

    def height(self) -> int:
        """Height of the page if it ended after the last row, bottom margin included."""
        return math.ceil(self.y + self.px(self.margin))

    def build(self) -> Page:
        return Page(
            width=self.width,
            height=self.height(),
            background=self.background,
            shapes=(*self.underlay, *self.shapes),
            rows=tuple(self.rows),
        )

    def _cells(
        self, columns: Sequence[tuple[float, Align]], values: Sequence[str], style: TextStyle
    ) -> list[Cell]:
        if len(columns) != len(values):
            raise ValueError(f"{len(values)} values for {len(columns)} columns: {values!r}")
        return [
            Cell(value, x, style, align) for (x, align), value in zip(columns, values, strict=True)
        ]

    def _place(self, cell: Cell, baseline: int) -> PlacedCell:
        length = self.measure(cell.text, cell.style)
        anchor = self.px(cell.x)
        left = {"left": anchor, "right": anchor - length, "center": anchor - length / 2}[cell.align]
        return PlacedCell(
            text=cell.text,
            x=round(left),
            baseline=baseline,
            size=self.font_size(cell.style),
            bold=cell.style.bold,
            color=cell.style.color,
        )

    def _check_fits(self, cells: Sequence[PlacedCell]) -> None:
        gap = self.px(4)
        previous: tuple[float, str] | None = None  # right edge and text of the cell to the left
        for cell in sorted(cells, key=lambda c: c.x):
            end = cell.x + load_font(cell.size, cell.bold).getlength(cell.text)
            if cell.x < 0 or end > self.width:
                raise LayoutError(f"{cell.text!r} runs past the edge of a {self.width}-px page")
            if previous is not None and cell.x < previous[0] + gap:
                raise LayoutError(f"{cell.text!r} overlaps {previous[1]!r}")
            previous = (end, cell.text)
