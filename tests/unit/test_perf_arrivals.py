"""The open loop's inter-arrival times: exponential at the rate, reproducible from the seed."""

from __future__ import annotations

import numpy as np
from scipy import stats

from vlmhyperbench.perf import poisson_gaps


def test_poisson_gaps_follow_the_rate_and_the_seed() -> None:
    gaps = poisson_gaps(4.0, 20_000, np.random.default_rng(7))
    assert abs(gaps.mean() - 0.25) < 0.01  # 1 / rate
    assert abs(gaps.std() - 0.25) < 0.01  # exponential: std = mean
    assert stats.kstest(gaps, "expon", args=(0, 0.25)).pvalue > 0.01
    again = poisson_gaps(4.0, 20_000, np.random.default_rng(7))
    assert np.array_equal(gaps, again)
    one_by_one = np.random.default_rng(7)  # how open_loop draws them: one per arrival
    assert np.allclose([poisson_gaps(4.0, 1, one_by_one)[0] for _ in range(50)], gaps[:50])
    assert not np.array_equal(gaps, poisson_gaps(4.0, 20_000, np.random.default_rng(8)))
