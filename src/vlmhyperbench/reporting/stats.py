"""Paired statistics for model comparisons: clustered bootstrap, permutation, McNemar, Holm, power.

The resampling unit is the cluster (a page, ``doc_id``; a sample is its own cluster where the
manifest has none). Every model's per-sample values of one (task, metric) sit in one matrix, and
one draw of resampled cluster counts (and one of cluster sign flips) serves every model and
metric of the task: a bootstrap of 20 models is two matrix products, not 190 pair loops. The
draws come from :mod:`vlmhyperbench.stats.resampling`, the engine behind the score files' CIs too.
McNemar's exact test, Holm's correction and the power calculation come from statsmodels.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from vlmhyperbench.stats.resampling import Resampling

ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class PairedResult:
    n: int
    n_clusters: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    se: float
    p_value: float
    test: str
    mdd: float


def is_binary(values: np.ndarray) -> bool:
    finite = values[~np.isnan(values)]
    return bool(finite.size) and bool(np.all((finite == 0.0) | (finite == 1.0)))


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired 0/1 outcomes."""
    a, b = np.asarray(a) == 1.0, np.asarray(b) == 1.0
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    if table[0][1] + table[1][0] == 0:
        return 1.0
    return float(mcnemar(table, exact=True).pvalue)


def mcnemar_exact_matrix(values: np.ndarray) -> np.ndarray:
    """Exact McNemar p-values of every pair of rows of a (models × samples) 0/1 matrix: the
    two-sided binomial test on the discordant pairs, as :func:`mcnemar_exact` (scipy)."""
    ones = (values == 1.0).astype(float)
    zeros = (values == 0.0).astype(float)
    b = ones @ zeros.T  # i right, j wrong
    c = b.T
    n = b + c
    p = np.minimum(1.0, 2.0 * binom.cdf(np.minimum(b, c), n, 0.5))
    p[n == 0] = 1.0
    np.fill_diagonal(p, math.nan)
    return p


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values; NaN entries stay NaN and do not count as tests."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    finite = ~np.isnan(p)
    if finite.any():
        out[finite] = multipletests(p[finite], alpha=ALPHA, method="holm")[1]
    return out.tolist()


@functools.cache
def power_multiplier(n_units: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The minimum detectable difference in standard errors: the paired t-test's effect size
    at ``n_units`` (statsmodels) times √n, ≈ 2.8 for large n."""
    if n_units < 2:
        return math.nan
    effect = TTestPower().solve_power(
        effect_size=None, nobs=n_units, alpha=alpha, power=power, alternative="two-sided"
    )
    return float(effect) * math.sqrt(n_units)


def paired_matrix(
    values: np.ndarray,
    resampling: Resampling,
    n_boot_ci: float = 0.95,
    permutation: bool = True,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Bootstrap and sign-flip statistics of the model pairs of one (task, metric).

    ``values``: (models × samples), NaN where a model has no value for a sample. Pairs whose
    masks differ are computed on their common samples. ``pairs``: the (i, j) row indices to
    compare, i < j (default: every pair); the others stay NaN but ``diff`` and ``n``. Returns
    arrays indexed [i, j] for the difference ``mean_i − mean_j``: diff, ci_low, ci_high, se,
    p (permutation; skipped, NaN, with ``permutation=False``), n.
    """
    m = values.shape[0]
    mask = ~np.isnan(values)
    out = {key: np.full((m, m), math.nan) for key in ("diff", "ci_low", "ci_high", "se", "p", "n")}
    alpha = (1.0 - n_boot_ci) / 2.0
    same_mask = bool(np.all(mask == mask[0]))
    if same_mask:
        sums = resampling.cluster_sums(values)  # M × K
        weights = resampling.cluster_sums(mask[:1].astype(float))[0]  # K
        total = weights.sum()
        if total == 0:
            return out
        with np.errstate(invalid="ignore", divide="ignore"):  # resamples of no sample
            boot = (resampling.counts @ sums.T) / (resampling.counts @ weights)[:, None]
        # B × M sign-flipped totals (differences are linear in the sums)
        flips = resampling.signs @ sums.T if permutation else None
        means = sums.sum(axis=1) / total
        # Each unordered pair once (upper triangle); [j, i] mirrors [i, j].
        first, second = np.triu_indices(m, 1) if pairs is None else pairs
        diffs = boot[:, first] - boot[:, second]  # B × pairs
        has_nan = bool(np.isnan(diffs).any())
        quantile = np.nanquantile if has_nan else np.quantile
        low, high = quantile(diffs, [alpha, 1.0 - alpha], axis=0)
        std = np.nanstd if has_nan else np.std
        se = std(diffs, axis=0, ddof=1) if diffs.shape[0] > 1 else np.full(len(first), math.nan)
        p = np.full(len(first), math.nan)
        if permutation:
            totals = sums.sum(axis=1)
            observed = np.abs(totals[first] - totals[second])
            null = np.abs(flips[:, first] - flips[:, second])
            tolerance = 1e-12 * np.maximum(1.0, observed)
            hits = np.sum(null >= (observed - tolerance)[None], axis=0)
            p = (1 + hits) / (null.shape[0] + 1)
        out["diff"] = means[:, None] - means[None, :]
        out["ci_low"][first, second], out["ci_high"][first, second] = low, high
        out["ci_low"][second, first], out["ci_high"][second, first] = -high, -low
        out["se"][first, second] = out["se"][second, first] = se
        out["p"][first, second] = out["p"][second, first] = p
        out["n"] = np.full((m, m), float(mask[0].sum()))
        return out
    for i, j in zip(*(np.triu_indices(m, 1) if pairs is None else pairs), strict=True):
        both = mask[i] & mask[j]
        if not both.any():
            continue
        d = np.where(both, values[i] - values[j], 0.0)
        dsum = resampling.cluster_sums(d)[0]
        w = resampling.cluster_sums(both.astype(float))[0]
        with np.errstate(invalid="ignore", divide="ignore"):  # resamples of no sample
            boot = (resampling.counts @ dsum) / (resampling.counts @ w)
        diff = dsum.sum() / w.sum()
        null = np.abs(resampling.signs @ dsum)
        p = _permutation_p(null, abs(dsum.sum()))
        for a, b, sign in ((i, j, 1.0), (j, i, -1.0)):
            _fill(out, a, b, sign * diff, sign * boot, alpha)
            out["p"][a, b] = p
            out["n"][a, b] = int(both.sum())
    return out


def _fill(out: dict, i: int, j: int, diff: float, boot: np.ndarray, alpha: float) -> None:
    boot = boot[~np.isnan(boot)]
    out["diff"][i, j] = diff
    if boot.size:
        low, high = np.quantile(boot, [alpha, 1.0 - alpha])
        out["ci_low"][i, j], out["ci_high"][i, j] = float(low), float(high)
        out["se"][i, j] = float(boot.std(ddof=1)) if boot.size > 1 else math.nan


def _permutation_p(null: np.ndarray, observed: float) -> float:
    """Two-sided sign-flip p-value, (1 + #{|T*| ≥ |T|}) / (B + 1); ties within rounding count."""
    if null.size == 0:
        return math.nan
    hits = int(np.sum(null >= observed - 1e-12 * max(1.0, abs(observed))))
    return (1 + hits) / (null.size + 1)


def paired_test(
    a: np.ndarray,
    b: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedResult:
    """One pair: mean difference a − b with a clustered bootstrap CI, a p-value (McNemar's exact
    test for 0/1 values, the clustered sign-flip permutation test otherwise) and the minimum
    detectable difference at 80% power."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if clusters is None:
        clusters = np.arange(len(a)).astype(str)
    both = ~np.isnan(a) & ~np.isnan(b)
    a, b, clusters = a[both], b[both], np.asarray(clusters)[both]
    resampling = Resampling.draw(clusters, n_boot, seed)
    stats = paired_matrix(np.vstack([a, b]), resampling)
    binary = is_binary(a) and is_binary(b)
    se = float(stats["se"][0, 1])
    return PairedResult(
        n=int(both.sum()),
        n_clusters=resampling.n_clusters,
        mean_a=float(a.mean()) if a.size else math.nan,
        mean_b=float(b.mean()) if b.size else math.nan,
        diff=float(stats["diff"][0, 1]),
        ci_low=float(stats["ci_low"][0, 1]),
        ci_high=float(stats["ci_high"][0, 1]),
        se=se,
        p_value=mcnemar_exact(a, b) if binary else float(stats["p"][0, 1]),
        test="mcnemar_exact" if binary else "sign_flip_permutation",
        mdd=power_multiplier(resampling.n_clusters) * se if se == se else math.nan,
    )
