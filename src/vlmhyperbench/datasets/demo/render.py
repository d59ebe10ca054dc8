"""Drawing a laid-out page into an RGB image."""

from __future__ import annotations

from PIL import Image, ImageDraw

from vlmhyperbench.datasets.demo.fonts import check_glyph_coverage, font_path, load_font
from vlmhyperbench.datasets.demo.layout import Page, Polyline, Rect, Shape


def check_page_glyphs(page: Page) -> None:
    """Every character of the page must exist in the font (regular or bold) that draws it."""
    for bold in (False, True):
        text = "".join(cell.text for row in page.rows for cell in row.cells if cell.bold == bold)
        check_glyph_coverage(text, font_path(bold))


def render_page(page: Page) -> Image.Image:
    check_page_glyphs(page)
    image = Image.new("RGB", (page.width, page.height), page.background)
    draw = ImageDraw.Draw(image)
    for shape in page.shapes:
        _draw_shape(draw, shape)
    for row in page.rows:
        for cell in row.cells:
            font = load_font(cell.size, cell.bold)
            draw.text((cell.x, cell.baseline), cell.text, font=font, fill=cell.color, anchor="ls")
    return image


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    if isinstance(shape, Rect):
        draw.rectangle(shape.box, fill=shape.fill, outline=shape.outline, width=shape.width)
    elif isinstance(shape, Polyline):
        draw.line(shape.points, fill=shape.color, width=shape.width, joint="curve")
    else:  # pragma: no cover - Shape is a closed union
        raise TypeError(f"cannot draw {shape!r}")
