"""MWS-Vision-Bench's ``Overall``: the mean of the five category means (``get_score_ru.py``).

A category's mean is the plain mean of its items' scores (what our default aggregate computes
for each ``mws_*`` metric). A category with no items is left out of ``Overall`` — the official
rule averages the categories a run has, so a run of the OCR category alone has
``Overall`` = its OCR mean; compare such a number with the leaderboard only with that said.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The official ``type`` of each category and the metric that scores it, in the order the
#: official code adds the category means.
CATEGORY_METRICS = {
    "text grounding ru": "mws_grounding",
    "reasoning VQA ru": "mws_vqa",
    "full-page OCR ru": "mws_ocr",
    "document parsing ru": "mws_markdown",
    "key information extraction ru": "mws_kie",
}


def overall(category_means: Mapping[str, float | None]) -> float:
    """The mean of the given category means (keyed by metric name or official type); missing
    or ``None`` categories are left out; 0.0 when there is none (as the official code)."""
    by_metric = {CATEGORY_METRICS.get(name, name): value for name, value in category_means.items()}
    unknown = sorted(set(by_metric) - set(CATEGORY_METRICS.values()))
    if unknown:
        raise ValueError(f"not an MWS-Vision-Bench category: {', '.join(unknown)}")
    present = [
        by_metric[metric]
        for metric in CATEGORY_METRICS.values()
        if by_metric.get(metric) is not None
    ]
    return sum(present) / len(present) if present else 0.0
