"""Render ``index.html`` from the package's jinja2 template: one self-contained page.

CSS sits in the page, figures are SVG ``data:`` images (no ids shared between figures, no
request outside the file), and nothing needs JavaScript.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

DASH = "—"


def fmt(value: Any, digits: int = 3) -> str:
    """Fixed float formatting; a dash for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_p(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def fmt_ci(low: Any, high: Any, digits: int = 2) -> str:
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (low, high)):
        return ""
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def fmt_pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{100 * value:.1f}%"


def svg_data_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("vlmhyperbench.reporting", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, fmt_p=fmt_p, fmt_ci=fmt_ci, fmt_pct=fmt_pct)
    return env


def render_index(context: dict[str, Any]) -> str:
    return environment().get_template("index.html.j2").render(**context)
