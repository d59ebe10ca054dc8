"""The SLA search: ladder, bisection to the known knee, early stop on saturation."""

from __future__ import annotations

import pytest

from vlmhyperbench.perf import SLO, LevelStats, Summary, find_max_load

BASE_MS = 100.0


def fake_measure(calls: list[float], knee: float = 8.0, growth: float = 1.0):
    """latency = base × max(1, c / knee); requests/s = c / latency (Little's law)."""

    def measure(level: float) -> LevelStats:
        calls.append(level)
        latency = BASE_MS * max(1.0, level / knee) ** growth
        s = Summary(mean=latency, p50=latency, p90=latency, p95=latency, p99=latency)
        rps = level / (latency / 1000)
        return LevelStats(level=level, requests=100, completed=100, errors=0, error_rate=0.0,
                          window_s=1.0, request_throughput=rps, output_throughput=rps * 10,
                          goodput=None, ttft_ms=s, tpot_ms=s, itl_ms=s, e2e_ms=s)  # fmt: skip

    return measure


def test_finds_the_known_knee_by_bisection() -> None:
    calls: list[float] = []
    # e2e ≤ 1.5 × base ⇔ c ≤ 12: the ladder stops at 16, bisection finds 12 exactly
    result = find_max_load(fake_measure(calls), [1, 2, 4, 8, 16, 32], SLO(e2e_ms=150))
    assert result.best == 12 and result.reason == "bisected"
    assert calls == [1, 2, 4, 8, 16, 12, 14, 13]  # 32 never measured
    result = find_max_load(fake_measure([]), [1, 2, 4, 8, 16, 32], SLO(e2e_ms=137.5))
    assert result.best == 11  # 11 / 8 = 1.375


def test_rates_bisect_to_a_relative_tolerance() -> None:
    # growing throughput (latency ∝ sqrt(rate / 8)); SLO e2e ≤ 150 ⇔ rate ≤ 18
    result = find_max_load(fake_measure([], growth=0.5), [2, 4, 8, 16, 32], SLO(e2e_ms=150),
                           kind="rate", rel_tol=0.01)  # fmt: skip
    assert result.reason == "bisected" and 18 * 0.99 <= result.best <= 18


def test_stops_early_when_throughput_saturates() -> None:
    calls: list[float] = []
    result = find_max_load(fake_measure(calls), [1, 2, 4, 8, 16, 32, 64], SLO(e2e_ms=10_000))
    assert result.reason == "saturated" and result.best == 16
    assert calls == [1, 2, 4, 8, 16]  # 16 adds nothing over 8: 32 and 64 never run


def test_first_level_failing_and_whole_ladder_meeting() -> None:
    result = find_max_load(fake_measure([], knee=0.5), [1, 2], SLO(e2e_ms=150))
    assert result.best is None and result.reason == "first_level_fails"
    result = find_max_load(fake_measure([]), [1, 2, 4], SLO(ttft_ms=1000, tpot_ms=1000))
    assert result.best == 4 and result.reason == "ladder_top"
    with pytest.raises(ValueError):
        find_max_load(fake_measure([]), [4], SLO(e2e_ms=150), percentile=80)
