"""Per-level figures on known records: goodput, percentiles, TPOT, ITL, window throughput."""

from __future__ import annotations

import numpy as np
import pytest

from vlmhyperbench.perf import SLO, RequestRecord, level_stats
from vlmhyperbench.perf.stats import is_good


def rec(i: int, start: float, ttft: float, e2e: float, tokens: int, phase: str = "measured",
        error: str | None = None) -> RequestRecord:  # fmt: skip
    chunks = list(np.linspace(start + ttft, start + e2e, tokens)) if tokens else []
    return RequestRecord(i, phase, start, start + e2e, start + ttft if tokens else None,  # type: ignore[arg-type]
                         chunks, tokens, f"id{i}", error)  # fmt: skip


def test_goodput_counts_exactly_the_requests_that_met_every_slo() -> None:
    slo = SLO(ttft_ms=100, tpot_ms=20, e2e_ms=500)
    records = [
        rec(0, 0.0, 0.050, 0.250, 11),  # ttft 50, tpot 20 (== SLO: met), e2e 250: good
        rec(1, 0.0, 0.150, 0.300, 11),  # ttft 150: misses ttft
        rec(2, 0.0, 0.050, 0.550, 11),  # tpot 50, e2e 550: misses two
        rec(3, 0.0, 0.050, 0.060, 1),  # one token: tpot counts as 0 (vLLM): good
        rec(4, 0.0, 0.010, 0.050, 5, error="HTTP 500: boom"),  # meets all, but an error
        rec(5, 0.0, 0.090, 0.490, 21),  # tpot 20, all met: good
    ]
    assert [is_good(r, slo) for r in records] == [True, False, False, True, False, True]
    stats = level_stats(records, 1, slo)
    assert stats.completed == 5 and stats.errors == 1 and stats.error_rate == pytest.approx(1 / 6)
    assert stats.window_s == pytest.approx(0.55)  # no warm-up: first start .. last end
    assert stats.request_throughput == pytest.approx(5 / 0.55)
    assert stats.goodput == pytest.approx(stats.request_throughput * 3 / 5)
    only_e2e = level_stats(records, 1, SLO(e2e_ms=500))  # 0, 1, 3, 5
    assert only_e2e.goodput == pytest.approx(only_e2e.request_throughput * 4 / 5)
    assert level_stats(records, 1).goodput is None


def test_percentiles_tpot_and_itl_on_known_records() -> None:
    records = [rec(i, float(i), 0.010 * (i + 1), 0.010 * (i + 1) + 0.1, 11) for i in range(10)]
    stats = level_stats(records, 1)
    ttfts = [10.0 * (i + 1) for i in range(10)]
    assert stats.ttft_ms.mean == pytest.approx(55.0)
    assert stats.ttft_ms.p50 == pytest.approx(np.percentile(ttfts, 50))
    assert stats.ttft_ms.p90 == pytest.approx(91.0)  # linear between 90 and 100
    assert stats.ttft_ms.p99 == pytest.approx(99.1)
    assert stats.tpot_ms.p95 == pytest.approx(10.0)  # (e2e - ttft) / (11 - 1) = 100 / 10
    assert stats.itl_ms.mean == pytest.approx(10.0) and stats.itl_ms.p99 == pytest.approx(10.0)
    assert stats.e2e_ms.p50 == pytest.approx(np.percentile([t + 100 for t in ttfts], 50))
    assert stats.output_throughput == pytest.approx(stats.request_throughput * 11)


def test_throughput_window_runs_from_the_last_warmup_end_and_counts_every_phase() -> None:
    records = [
        rec(0, 0.0, 0.1, 1.0, 2, phase="warmup"),  # the last warm-up end (1.0): the window's start
        rec(5, 0.0, 0.1, 0.8, 2, phase="warmup"),  # ends 0.8: before the window
        rec(1, 0.5, 0.1, 1.5, 2),  # ends 2.0
        rec(2, 1.0, 0.1, 2.0, 2),  # ends 3.0: the window's end
        rec(3, 1.5, 0.1, 1.0, 2, phase="cooldown"),  # ends 2.5: inside, counted for throughput
        rec(4, 2.0, 0.1, 5.0, 2, phase="cooldown"),  # ends 7.0: outside
    ]
    stats = level_stats(records, 2)
    assert stats.window_s == pytest.approx(2.0)
    assert stats.request_throughput == pytest.approx(3 / 2.0)
    assert stats.requests == 2 and stats.e2e_ms.mean == pytest.approx(1750.0)
