"""The report's statistics pinned against known values (McNemar, Holm, paired and cluster
bootstrap, permutation test, power) and the aggregate bootstrap's page clusters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vlmhyperbench.metrics.aggregate import aggregate
from vlmhyperbench.reporting.stats import (
    holm,
    mcnemar_exact,
    mcnemar_exact_matrix,
    paired_matrix,
    paired_test,
    power_multiplier,
)
from vlmhyperbench.stats.resampling import Resampling


def _pairs(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return np.array(a, dtype=float), np.array(b, dtype=float)


def test_mcnemar_exact_on_a_fixed_table() -> None:
    # Discordant pairs 10 vs 2: two-sided binomial P(X <= 2 | n=12, 1/2) * 2 = 79 / 2048.
    a, b = _pairs(both=30, only_a=10, only_b=2, neither=8)
    assert mcnemar_exact(a, b) == pytest.approx(2 * 79 / 4096)
    assert mcnemar_exact(a, b) == pytest.approx(0.0385742, abs=1e-6)
    # No discordant pair: no evidence of a difference.
    assert mcnemar_exact(a, a) == 1.0


def test_mcnemar_matrix_agrees_with_statsmodels() -> None:
    rng = np.random.default_rng(3)
    values = (rng.random((4, 60)) < [[0.3], [0.5], [0.6], [0.9]]).astype(float)
    matrix = mcnemar_exact_matrix(values)
    for i in range(4):
        for j in range(4):
            if i != j:
                assert matrix[i, j] == pytest.approx(mcnemar_exact(values[i], values[j]))
    assert np.isnan(np.diag(matrix)).all()


def test_holm_on_fixed_p_values() -> None:
    # Sorted p = .01, .02, .03, .04 times 4, 3, 2, 1 → .04, .06, .06 (monotone), .06.
    assert holm([0.01, 0.04, 0.03, 0.02]) == pytest.approx([0.04, 0.06, 0.06, 0.06])
    assert holm([0.5, math.nan, 0.01])[2] == pytest.approx(0.02)
    assert math.isnan(holm([0.5, math.nan, 0.01])[1])


def test_paired_bootstrap_of_a_constant_shift_is_exact() -> None:
    rng = np.random.default_rng(0)
    b = rng.normal(size=300)
    result = paired_test(b + 0.25, b)
    assert result.diff == pytest.approx(0.25)
    assert result.ci_low == pytest.approx(0.25)
    assert result.ci_high == pytest.approx(0.25)


def test_paired_bootstrap_ci_matches_the_normal_theory_interval() -> None:
    # iid differences with sd 1: the 95% CI is mean ± 1.96 / √n to bootstrap precision.
    rng = np.random.default_rng(1)
    n = 2000
    b = rng.normal(size=n)
    d = rng.normal(0.1, 1.0, size=n)
    result = paired_test(b + d, b, n_boot=4000, seed=5)
    half = 1.96 * d.std(ddof=1) / math.sqrt(n)
    assert result.diff == pytest.approx(d.mean())
    assert result.ci_low == pytest.approx(d.mean() - half, abs=0.006)
    assert result.ci_high == pytest.approx(d.mean() + half, abs=0.006)
    assert result.se == pytest.approx(d.std(ddof=1) / math.sqrt(n), rel=0.1)
    assert result.test == "sign_flip_permutation"
    assert result.p_value < 0.01
    # The MDD at 80% power is ≈ 2.8 standard errors.
    assert result.mdd == pytest.approx(2.8 * result.se, rel=0.02)


def test_cluster_bootstrap_is_wider_than_the_naive_one_when_questions_share_a_page() -> None:
    # 40 pages × 5 questions; whether a model reads a page decides all its questions.
    rng = np.random.default_rng(2)
    pages = np.repeat(np.arange(40), 5).astype(str)
    page_a = rng.random(40) < 0.7
    page_b = rng.random(40) < 0.5
    a = np.repeat(page_a, 5).astype(float)
    b = np.repeat(page_b, 5).astype(float)
    naive = paired_test(a, b, n_boot=3000)
    clustered = paired_test(a, b, pages, n_boot=3000)
    assert naive.diff == clustered.diff
    assert clustered.n_clusters == 40 and naive.n_clusters == 200
    width = lambda r: r.ci_high - r.ci_low  # noqa: E731
    # Perfectly correlated within a page: about √5 ≈ 2.2 times wider.
    assert width(clustered) > 1.8 * width(naive)
    assert clustered.mdd > naive.mdd


def test_aggregate_resamples_pages_where_rows_have_a_doc_id() -> None:
    rng = np.random.default_rng(4)
    page_right = rng.random(30) < 0.6
    frame = pd.DataFrame(
        {
            "id": [f"q{k}" for k in range(150)],
            "value": np.repeat(page_right, 5).astype(float),
            "doc_id": np.repeat([f"page-{p}" for p in range(30)], 5),
        }
    )
    clustered = aggregate(frame, n_boot=2000, seed=0)["overall"]
    naive = aggregate(frame.drop(columns="doc_id"), n_boot=2000, seed=0)["overall"]
    assert clustered["value"] == naive["value"]
    assert clustered["n_samples"] == 150  # samples still count as samples
    width = lambda e: e["ci_high"] - e["ci_low"]  # noqa: E731
    assert width(clustered) > 1.8 * width(naive)


def test_permutation_p_value_is_uniform_ish_under_the_null_and_small_under_a_shift() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(2, 400))
    resampling = Resampling.draw(np.arange(400).astype(str), 999, seed=1)
    null = paired_matrix(values, resampling)
    assert 0.05 < null["p"][0, 1] <= 1.0
    assert null["p"][0, 1] == null["p"][1, 0]
    shifted = paired_matrix(np.vstack([values[0] + 0.5, values[0]]), resampling)
    assert shifted["p"][0, 1] == pytest.approx(1 / 1000)
    assert shifted["diff"][0, 1] == pytest.approx(0.5)
    assert shifted["diff"][1, 0] == pytest.approx(-0.5)


def test_pairs_with_different_missing_samples_use_their_common_samples() -> None:
    a = np.array([1.0, 2.0, 3.0, math.nan])
    b = np.array([0.0, 1.0, math.nan, 5.0])
    resampling = Resampling.draw(np.array(["1", "2", "3", "4"]), 200, seed=0)
    stats = paired_matrix(np.vstack([a, b]), resampling)
    assert stats["diff"][0, 1] == pytest.approx(1.0)  # samples 1 and 2 only
    assert stats["n"][0, 1] == 2


def test_power_multiplier_approaches_the_normal_value() -> None:
    assert power_multiplier(10_000) == pytest.approx(1.95996 + 0.84162, rel=1e-3)
    assert power_multiplier(10) > power_multiplier(100)  # t, not z, for few clusters
    assert math.isnan(power_multiplier(1))


def test_resampling_is_seeded() -> None:
    clusters = np.array(["a", "a", "b", "c"])
    one, two = Resampling.draw(clusters, 50, 9), Resampling.draw(clusters, 50, 9)
    assert np.array_equal(one.counts, two.counts) and np.array_equal(one.signs, two.signs)
    assert one.n_clusters == 3
    assert np.all(one.counts.sum(axis=1) == 3)
