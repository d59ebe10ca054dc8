"""The judge metrics a run lists in ``results/variants.json`` (``judge_metrics``), and where
their judgements files are: read by the report's "Judge metrics" section
(:mod:`vlmhyperbench.reporting.judges`) and by ``vlmhb view``, which must not import the
section's statistics to show a verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vlmhyperbench.config.schema import ApiCost, Price, SelfHostedCost
from vlmhyperbench.reporting.variants import VARIANTS_FILE

JUDGEMENTS_DIR = "judgements"
#: Each verdict kind and the level of measurement its agreement is computed at.
LEVELS = {"binary": "nominal", "score": "interval", "pairwise": "ordinal"}


@dataclass(frozen=True)
class JudgeMetric:
    """One entry of ``variants.json``'s ``judge_metrics``."""

    name: str
    judges: tuple[str, ...]
    kind: str = "binary"  # binary | score | pairwise
    against: str | None = None  # pairwise: the model the others are compared with
    low: float = 1.0
    high: float = 5.0
    aggregate: str = "mean"
    invalid: str = "exclude"
    prices: dict[str, Price | None] = field(default_factory=dict)  # None: no price


def judgements_path(root: Path, metric: str, judge: str, model: str, task: str) -> Path:
    return root / JUDGEMENTS_DIR / metric / judge / model / f"{task}.jsonl"


def _price(metric: str, judge: str, cost: Any, warnings: list[str]) -> Price | None:
    if not isinstance(cost, dict):
        return None
    kind = SelfHostedCost if "usd_per_hour" in cost else ApiCost
    try:
        return kind.model_validate(cost)
    except ValidationError as exc:
        problem = exc.errors()[0]
        warnings.append(
            f"{VARIANTS_FILE}: judge metric {metric}: judge {judge}: cost unreadable "
            f"({problem['loc']}: {problem['msg']}); shown as no cost"
        )
        return None


def _judge_metric(name: str, entry: Any, warnings: list[str]) -> JudgeMetric:
    if not isinstance(entry, dict) or not isinstance(entry.get("judges"), list):
        raise ValueError(f"judge metric {name!r} is not an object with a list of judges")
    verdict = entry.get("verdict") or {}
    kind = str(verdict.get("type", "binary"))
    if kind not in LEVELS:
        raise ValueError(f"judge metric {name!r}: unknown verdict type {kind!r}")
    judges = tuple(str(j) for j in entry["judges"])
    costs = entry.get("costs") or {}
    return JudgeMetric(
        name=name,
        judges=judges,
        kind=kind,
        against=None if verdict.get("against") is None else str(verdict["against"]),
        low=float(verdict.get("min", 1)),
        high=float(verdict.get("max", 5)),
        aggregate=str(entry.get("aggregate", "mean")),
        invalid=str(entry.get("invalid", "exclude")),
        prices={j: _price(name, j, costs.get(j), warnings) for j in judges},
    )


def read_judge_metrics(root: Path) -> tuple[list[JudgeMetric], list[str]]:
    """The judge metrics ``variants.json`` lists, by name; none when it lists none or cannot
    be read (a warning)."""
    path = root / VARIANTS_FILE
    if not path.is_file():
        return [], []
    warnings: list[str] = []
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("judge_metrics") or {}
        if not isinstance(entries, dict):
            raise ValueError("'judge_metrics' is not an object")
        metrics = [_judge_metric(str(n), e, warnings) for n, e in sorted(entries.items())]
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        return [], [f"{VARIANTS_FILE}: judge metrics unreadable ({exc}); no judge section"]
    return metrics, warnings
