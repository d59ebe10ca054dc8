"""Ordering (page sorting): Kendall τ, Spearman ρ and positional accuracy.

The reference ``references[0]`` is the true order, a JSON list (``[2, 3, 1]``: the dataset
convention, the 1-based numbers of the shown pages in their true order) or a comma/semicolon/
newline/space separated list. The prediction is read the same way, more leniently: a JSON list
anywhere in the answer, else the separated items; items compare as case-folded text, so
``"2"`` and ``2`` are the same page. Duplicates count at their first position; items that are
not in the reference are ignored.

τ and ρ compare each reference item's true position with its predicted position; reference
items the prediction leaves out share the last position (a tie). τ is Kendall's τ-b (as
``scipy.stats.kendalltau``), ρ is Pearson's r of average ranks (``scipy.stats.spearmanr``). A
prediction with no usable order (nothing parsed, or every item tied) scores 0 — no evidence of
any order — and orderings of fewer than two items are not applicable (NaN).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from vlmhyperbench.metrics.base import require_references

_SEPARATORS = re.compile(r"[,;\n]+")
_LIST = re.compile(r"\[[^\[\]]*\]")


def _item(value: Any) -> str:
    return str(value).strip().strip("\"'").strip().casefold()


def parse_order(text: str, *, lenient: bool = False) -> list[str]:
    """The items of an order written as a JSON list or a separated list."""
    candidates = [text.strip()]
    if lenient:
        candidates += [m.group(0) for m in _LIST.finditer(text)]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, list):
            return [_item(v) for v in value if _item(v)]
    body = text.strip().strip("[]")
    parts = _SEPARATORS.split(body) if _SEPARATORS.search(body) else body.split()
    return [_item(p) for p in parts if _item(p)]


def _positions(prediction: str, references: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(true positions, predicted positions) of the reference items; missing → tied last."""
    truth = parse_order(require_references(references)[0])
    if len(set(truth)) != len(truth):
        raise ValueError(f"the reference order repeats an item: {truth}")
    seen: dict[str, int] = {}
    for item in parse_order(prediction, lenient=True):
        if item in set(truth) and item not in seen:
            seen[item] = len(seen)
    last = len(seen)
    predicted = [seen.get(item, last) for item in truth]
    return np.arange(len(truth), dtype=np.float64), np.asarray(predicted, dtype=np.float64)


def _kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    upper = np.triu(np.ones_like(dx, dtype=bool), k=1)
    concordant_minus_discordant = float((dx * dy)[upper].sum())
    untied_x = float(np.count_nonzero(dx[upper]))
    untied_y = float(np.count_nonzero(dy[upper]))
    if untied_x == 0 or untied_y == 0:
        return 0.0
    return concordant_minus_discordant / math.sqrt(untied_x * untied_y)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end - 1) / 2.0
            start = end
    return ranks


def kendall_tau(prediction: str, references: Sequence[str]) -> float:
    """Kendall's τ-b between the true and the predicted order (−1…1; see the module doc)."""
    truth, predicted = _positions(prediction, references)
    if len(truth) < 2:
        return math.nan
    return _kendall_tau_b(truth, predicted)


def spearman_rho(prediction: str, references: Sequence[str]) -> float:
    """Spearman's ρ between the true and the predicted order (−1…1; see the module doc)."""
    truth, predicted = _positions(prediction, references)
    if len(truth) < 2:
        return math.nan
    a, b = _average_ranks(truth), _average_ranks(predicted)
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return 0.0 if denominator == 0 else float((a * b).sum()) / denominator


def positional_accuracy(prediction: str, references: Sequence[str]) -> float:
    """Share of positions holding the right item: |{i : predicted[i] == truth[i]}| / len(truth)
    (the predicted order read as above, duplicates and unknown items dropped)."""
    truth = parse_order(require_references(references)[0])
    if not truth:
        return math.nan
    known = set(truth)
    predicted: list[str] = []
    for item in parse_order(prediction, lenient=True):
        if item in known and item not in predicted:
            predicted.append(item)
    return sum(1 for a, b in zip(predicted, truth, strict=False) if a == b) / len(truth)
