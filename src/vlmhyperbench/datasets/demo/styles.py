"""Text styles shared by the document pages (sizes in design units of a 640-wide page)."""

from __future__ import annotations

from vlmhyperbench.datasets.demo.layout import TextStyle

INK = (20, 20, 20)
GREY = (95, 95, 95)

TITLE = TextStyle(18, bold=True, color=INK)
LABEL = TextStyle(12, color=GREY)
VALUE = TextStyle(15, bold=True, color=INK)
BODY = TextStyle(14, color=INK)
BODY_BOLD = TextStyle(14, bold=True, color=INK)
TABLE = TextStyle(13, color=INK)
TABLE_HEADER = TextStyle(13, bold=True, color=INK)
