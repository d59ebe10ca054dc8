"""The explorer's pages from the package's Jinja2 templates, every value autoescaped.

Answers, questions, references, file names and judge replies are untrusted: they reach a page
only as escaped text (autoescape on for every template, no ``|safe`` on data), and the server's
Content-Security-Policy refuses inline script besides.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined

from vlmhyperbench.reporting.html import fmt, fmt_ci, fmt_p

SCORE_BANDS = 5  # colours from worst (s0) to best (s4)


def score_class(value: float | None, higher_is_better: bool) -> str:
    """A CSS class for a value on a 0..1 scale: ``s0`` (worst) … ``s4`` (best), ``na``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "na"
    good = value if higher_is_better else 1.0 - value
    good = min(1.0, max(0.0, good))
    return f"s{min(SCORE_BANDS - 1, int(good * SCORE_BANDS))}"


def task_href(task: str, query: str = "") -> str:
    return f"/task/{quote(task, safe='')}" + (f"?{query}" if query else "")


def sample_href(task: str, sample_id: str) -> str:
    return f"/task/{quote(task, safe='')}/sample?{urlencode({'id': sample_id})}"


def diff_href(task: str, metric: str = "") -> str:
    query = f"?{urlencode({'metric': metric})}" if metric else ""
    return f"/task/{quote(task, safe='')}/diff{query}"


def export_href(task: str, query: str = "") -> str:
    return f"/task/{quote(task, safe='')}/export" + (f"?{query}" if query else "")


def media_href(kind: str, dataset: str, path: str) -> str:
    """``/media/…`` (the original) or ``/thumb/…`` for an image of ``dataset``."""
    return f"/{kind}/{quote(dataset, safe='')}/{quote(path)}"


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("vlmhyperbench.explorer", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=fmt, fmt_ci=fmt_ci, fmt_p=fmt_p, score_class=score_class)
    env.globals.update(
        task_href=task_href, sample_href=sample_href, diff_href=diff_href, export_href=export_href
    )
    return env


def render(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(**context)


def static_text(name: str) -> str:
    """A file of the package's ``static/`` folder (the stylesheet, the script)."""
    return resources.files("vlmhyperbench.explorer").joinpath("static", name).read_text("utf-8")
