"""A judge metric's value per sample, from its judges' verdicts.

The score job of a judge metric puts each judge's judgement of the sample (its judgements
file's line: ``verdict``, ``status``) into the prediction record, as ``judgements: {judge:
line}``. The sample's value is the panel's:

* each judge's verdict: its ``verdict`` when ``status`` is ``ok``; an ``invalid`` verdict (an
  unreadable reply) or a judge ``error`` (a 4xx for that request) is left out (``invalid:
  exclude``) or counts as ``wrong``; a judge with no line for the sample is left out;
* ``aggregate: mean``: the mean of the judges' verdicts; ``majority``: the verdict more than
  half of them gave, else their mean (a split panel);
* no verdict left: ``nan``, not applicable (left out of the metric's mean, and counted);
* a sample whose prediction failed is not judged: it scores ``wrong``, as a failed request
  scores 0 under every other metric;
* with ``only_when``, a sample the rule-based metric accepted (its value at least ``below``)
  is not judged either: it takes the rule's value (``rule_value`` in its record).

``wrong`` is 0 for a binary verdict and the score range's minimum for a score.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: The implementation every judge metric is scored with (its entry has a ``judge`` block).
JUDGE_METRIC = "vlmhyperbench.metrics.judge:judge_verdict"


def accepted_by_rule(rule_scores: str | Path, below: float) -> dict[str, float]:
    """``only_when``: the samples the rule-based metric scored at least ``below`` on every row
    (they are not judged), with the rule's value (its lowest row)."""
    import pandas as pd

    lowest = pd.read_parquet(rule_scores, columns=["id", "value"]).groupby("id")["value"].min()
    return {str(i): float(v) for i, v in lowest.items() if v >= below}


def _verdicts(
    judgements: Mapping[str, Mapping[str, Any]], judges: Sequence[str], invalid: str, wrong: float
) -> list[float]:
    values = []
    for judge in judges:
        line = judgements.get(judge)
        if line is None:
            continue
        if line.get("status") == "ok" and line.get("verdict") is not None:
            values.append(float(line["verdict"]))
        elif invalid == "wrong":
            values.append(wrong)
    return values


def panel_value(values: Sequence[float], aggregate: str) -> float:
    """The panel's verdict: the mean, or the majority's (a split panel: the mean)."""
    if not values:
        return math.nan
    if aggregate == "majority":
        verdict, count = Counter(values).most_common(1)[0]
        if count * 2 > len(values):
            return verdict
    return sum(values) / len(values)


def judge_verdict(
    prediction: str,
    references: Sequence[str],
    *,
    sample: Mapping[str, Any],
    judges: Sequence[str],
    aggregate: str = "mean",
    invalid: str = "exclude",
    wrong: float = 0.0,
) -> float:
    """The sample's value from its judges' verdicts (see the module docstring)."""
    if sample.get("error") is not None:
        return wrong
    record = sample.get("record") or {}
    if record.get("rule_value") is not None:  # only_when: a rule already accepted it
        return float(record["rule_value"])
    values = _verdicts(record.get("judgements") or {}, judges, invalid, wrong)
    return panel_value(values, aggregate)
