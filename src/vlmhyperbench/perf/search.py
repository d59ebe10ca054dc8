"""The highest load that meets the SLO at a chosen percentile.

A level *meets the SLO* when its error rate is at most ``max_error_rate`` and, for every SLO
given, the chosen percentile (p95 by default) of that figure (TTFT, TPOT, e2e) is ``<=`` the SLO.

1. **Ladder**: measure the levels in ascending order until one does not meet the SLO. Stop early
   when throughput saturates: a level that meets the SLO with requests/s within ``saturation``
   (3%) of the previous level's - more load then buys latency, not throughput; that level is
   the answer.
2. **Bisection** between the last level that met the SLO and the first that did not: integer
   midpoints for concurrency (until they are adjacent), midpoints for rates until the interval
   is within ``rel_tol`` (5%) of its lower end.

If the first level already fails, the answer is ``None``; if every level meets it without
saturating, the answer is the top of the ladder (``reason`` says which). ``measure(level)`` runs
one level (a load generator and :func:`~.stats.level_stats`), so the search is testable without
a server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel

from vlmhyperbench.perf.stats import SLO, LevelStats

Reason = Literal["bisected", "saturated", "ladder_top", "first_level_fails"]


class SearchResult(BaseModel):
    best: float | None
    reason: Reason
    levels: list[LevelStats]  # in the order measured


def meets_slo(
    stats: LevelStats, slo: SLO, percentile: int = 95, max_error_rate: float = 0.0
) -> bool:
    if stats.completed == 0 or stats.error_rate > max_error_rate:
        return False
    for limit, summary in ((slo.ttft_ms, stats.ttft_ms), (slo.tpot_ms, stats.tpot_ms),
                           (slo.e2e_ms, stats.e2e_ms)):  # fmt: skip
        if limit is not None and summary is not None and summary.at(percentile) > limit:
            return False
    return True


def _midpoint(low: float, high: float, integer: bool, rel_tol: float) -> float | None:
    if integer:
        return None if high - low <= 1 else float((int(low) + int(high)) // 2)
    return None if high - low <= rel_tol * low else (low + high) / 2


def find_max_load(
    measure: Callable[[float], LevelStats],
    ladder: Sequence[float],
    slo: SLO,
    *,
    kind: Literal["concurrency", "rate"] = "concurrency",
    percentile: int = 95,
    max_error_rate: float = 0.0,
    saturation: float = 0.03,
    rel_tol: float = 0.05,
) -> SearchResult:
    """The ladder, then bisection (see the module docstring)."""
    levels = sorted(float(level) for level in ladder)
    if not levels:
        raise ValueError("the ladder is empty")
    seen: list[LevelStats] = []

    def ok(level: float) -> tuple[bool, LevelStats]:
        stats = measure(level)
        seen.append(stats)
        return meets_slo(stats, slo, percentile, max_error_rate), stats

    low: LevelStats | None = None
    high: float | None = None
    for level in levels:
        met, stats = ok(level)
        if not met:
            high = level
            break
        flat = low is not None and stats.request_throughput <= low.request_throughput * (
            1 + saturation
        )
        if flat:
            return SearchResult(best=level, reason="saturated", levels=seen)
        low = stats
    if low is None:
        return SearchResult(best=None, reason="first_level_fails", levels=seen)
    if high is None:
        return SearchResult(best=low.level, reason="ladder_top", levels=seen)
    best = low.level
    while (mid := _midpoint(best, high, kind == "concurrency", rel_tol)) is not None:
        met, _ = ok(mid)
        best, high = (mid, high) if met else (best, mid)
    return SearchResult(best=best, reason="bisected", levels=seen)
