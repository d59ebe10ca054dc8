"""Agreement between judges, and between a judge and human labels.

A judge metric asks a panel of judge models for a verdict on each sample: binary (0/1), a
score in a range, or a pairwise preference (A better / B better / tie). The functions here take
pandas objects indexed by sample; NaN means no verdict (invalid, or not judged), and a sample
counts only where the ratings it needs are present.

**Cohen's κ** (two raters, nominal categories, unweighted), on the n samples both rated::

    p_o = (samples where both gave the same label) / n             observed agreement
    p_e = Σ_c  (share of a's labels that are c) · (share of b's that are c)   chance agreement
    κ   = (p_o − p_e) / (1 − p_e)

κ = 1 is perfect agreement, 0 agreement at chance level, < 0 worse than chance. It is
undefined (NaN here) when n = 0, or when p_e = 1 (both raters gave one and the same label to
every sample: no variation to agree on). κ comes from ``statsmodels.stats.inter_rater.
cohens_kappa`` on the square contingency table of the two raters' labels.

**Krippendorff's α** (any number of raters, missing ratings allowed), from the
``krippendorff`` package::

    α = 1 − D_o / D_e

with D_o the observed disagreement — the mean distance δ(c, k) between the pairs of values
one sample received (a sample rated m ≥ 2 times contributes its m·(m − 1) ordered pairs with
weight 1/(m − 1) each: the coincidence matrix o_ck) — and D_e the disagreement expected by
chance, the mean distance between any two of all pairable values. ``level`` picks δ: nominal
(δ = 0 for equal labels, else 1: for binary and pairwise verdicts), ordinal (δ grows with the
number of values ranked between c and k: for scores on a scale whose steps are not equal),
interval (δ = (c − k)²: for scores whose steps are equal). For nominal data
α = 1 − (n − 1)·(n − Σ_c o_cc) / (n² − Σ_c n_c²), n the number of pairable values and n_c
those equal to c. A sample with fewer than two ratings carries no information and is left
out. α is undefined (NaN here) when no sample has two ratings, or when all pairable values
are equal (D_e = 0).

**Agreement with human labels**: κ as above between the judge and the human labels, the
accuracy p_o (share of the samples with both where the judge gives the human label), and the
confusion matrix (human labels as rows, judge labels as columns).

**Position consistency** of pairwise verdicts (1.0: A better, 0.0: B better, 0.5: tie): each
pair is judged twice, the second time with the two answers swapped, and that verdict mapped
back to the original order — a judge that ignores position gives the same verdict twice. A
pair whose two verdicts differ is *inconsistent* and counts as a tie. It is *position-biased*
when the two verdicts are opposite wins (1.0 and 0.0): the judge preferred whatever answer
stood in the same position, the first (1.0 then 0.0 once mapped back) or the second (0.0 then
1.0). A tie against a win is inconsistent but not position-biased.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import krippendorff
import numpy as np
import pandas as pd
from statsmodels.stats.inter_rater import cohens_kappa as _sm_cohens_kappa

Level = Literal["nominal", "ordinal", "interval"]

# The codes of a pairwise verdict, in the original order of the two answers.
A_BETTER, B_BETTER, TIE = 1.0, 0.0, 0.5


@dataclass(frozen=True)
class Agreement:
    """Cohen's κ between two raters on the ``n`` samples both rated; ``observed`` is p_o,
    ``expected`` p_e (NaN where n = 0)."""

    kappa: float
    n: int
    observed: float
    expected: float


@dataclass(frozen=True, eq=False)
class HumanAgreement:
    """A judge against human labels on the ``n`` samples with both: κ, accuracy (p_o), and
    the confusion matrix (rows: human labels, columns: judge labels; counts)."""

    kappa: float
    accuracy: float
    n: int
    confusion: pd.DataFrame


@dataclass(frozen=True, eq=False)
class PositionBias:
    """Pairwise verdicts asked in both orders: ``consistent_verdicts`` (per sample: the
    verdict where both orders agree, a tie where they do not, NaN where an order has no
    verdict), and the shares of the ``n`` pairs with both verdicts that are inconsistent and
    position-biased (see the module docstring)."""

    consistent_verdicts: pd.Series
    n: int
    inconsistent_rate: float
    position_bias_rate: float
    first_position_rate: float  # both orders picked the answer shown first
    second_position_rate: float  # both orders picked the answer shown second


def _both_rated(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    pair = pd.concat([a.rename("a"), b.rename("b")], axis=1)
    return pair.dropna()


def _contingency(a: pd.Series, b: pd.Series) -> tuple[pd.DataFrame, int]:
    """The square table of a's labels (rows) against b's (columns) on the samples both rated,
    over every label either gave anywhere (sorted), and the number of those samples."""
    labels = sorted(set(a.dropna().unique()) | set(b.dropna().unique()))
    pair = _both_rated(a, b)
    table = pd.crosstab(pair["a"], pair["b"]).reindex(index=labels, columns=labels, fill_value=0)
    return table.rename_axis(index=a.name, columns=b.name), len(pair)


def _kappa_from_table(table: pd.DataFrame, n: int) -> Agreement:
    if n == 0:
        return Agreement(kappa=float("nan"), n=0, observed=float("nan"), expected=float("nan"))
    counts = table.to_numpy(dtype=float)
    observed = float(np.trace(counts)) / n
    expected = float(counts.sum(axis=1) @ counts.sum(axis=0)) / n**2
    # p_e = 1 only when both raters gave one and the same label to every sample.
    nonzero = np.flatnonzero(counts)
    if len(nonzero) == 1 and nonzero[0] % (len(counts) + 1) == 0:
        kappa = float("nan")
    else:
        kappa = float(_sm_cohens_kappa(counts, return_results=False))
    return Agreement(kappa=kappa, n=n, observed=observed, expected=expected)


def cohen_kappa(a: pd.Series, b: pd.Series) -> Agreement:
    """Unweighted Cohen's κ of two raters' labels (aligned on the index), on the samples both
    rated; NaN κ where undefined (no such sample, or one shared label throughout)."""
    return _kappa_from_table(*_contingency(a, b))


def pairwise_kappas(ratings: pd.DataFrame) -> pd.DataFrame:
    """Cohen's κ for every pair of judges (columns of ``ratings``, rows = samples): one row per
    pair, the judges' names in sorted order, columns judge_a, judge_b, kappa, n, observed,
    expected."""
    judges = sorted(ratings.columns)
    rows = []
    for judge_a, judge_b in combinations(judges, 2):
        agreement = cohen_kappa(ratings[judge_a], ratings[judge_b])
        rows.append(
            {
                "judge_a": judge_a,
                "judge_b": judge_b,
                "kappa": agreement.kappa,
                "n": agreement.n,
                "observed": agreement.observed,
                "expected": agreement.expected,
            }
        )
    columns = ["judge_a", "judge_b", "kappa", "n", "observed", "expected"]
    return pd.DataFrame(rows, columns=columns).astype({"n": int})


def _numeric_ratings(ratings: pd.DataFrame, level: Level) -> np.ndarray:
    """The ratings as floats (NaN: missing); labels that are not numbers get integer codes,
    which only a nominal level may use."""
    try:
        return ratings.apply(pd.to_numeric).to_numpy(dtype=float)
    except (TypeError, ValueError):
        if level != "nominal":
            raise TypeError(f"{level} α needs numeric ratings") from None
    stacked = ratings.to_numpy(dtype=object).ravel()
    codes, _ = pd.factorize(stacked)  # missing → -1
    return np.where(codes < 0, np.nan, codes).astype(float).reshape(ratings.shape)


def krippendorff_alpha(ratings: pd.DataFrame, level: Level = "nominal") -> float:
    """Krippendorff's α of ``ratings`` (rows = samples, columns = judges, NaN = missing) at
    the given level of measurement. Samples with fewer than two ratings are left out (they
    carry no information). NaN, not an exception, where α is undefined: no sample rated
    twice, or a single value among the pairable ratings."""
    if level not in ("nominal", "ordinal", "interval"):
        raise ValueError(f"unknown level of measurement: {level!r}")
    values = _numeric_ratings(ratings, level)
    pairable = values[(~np.isnan(values)).sum(axis=1) >= 2]
    if len(pairable) == 0 or len(np.unique(pairable[~np.isnan(pairable)])) < 2:
        return float("nan")
    return float(krippendorff.alpha(reliability_data=pairable.T, level_of_measurement=level))


def human_agreement(judge: pd.Series, human: pd.Series) -> HumanAgreement:
    """A judge's verdicts against human labels (aligned on the index) on the samples with
    both: κ, accuracy, and the confusion matrix (human labels as rows, judge labels as
    columns, every label seen in either, sorted)."""
    confusion, n = _contingency(human.rename("human"), judge.rename("judge"))
    agreement = _kappa_from_table(confusion, n)
    return HumanAgreement(
        kappa=agreement.kappa, accuracy=agreement.observed, n=n, confusion=confusion
    )


def position_consistency(first: pd.Series, swapped: pd.Series) -> PositionBias:
    """Pairwise verdicts (1.0: A better, 0.0: B better, 0.5: tie) in the original order
    (``first``) and with the answers swapped (``swapped``, already mapped back to the original
    order), aligned on the index.

    ``consistent_verdicts``: ``first`` where the two agree, 0.5 where they differ, NaN where
    either is missing. Over the ``n`` pairs with both verdicts: ``inconsistent_rate`` = share
    with first ≠ swapped; ``position_bias_rate`` = share with {first, swapped} = {1.0, 0.0}
    (the same position won twice), the sum of ``first_position_rate`` (first = 1.0, swapped
    = 0.0: the answer shown first won both times) and ``second_position_rate`` (first = 0.0,
    swapped = 1.0). NaN rates where n = 0."""
    pair = pd.concat([first.rename("first"), swapped.rename("swapped")], axis=1)
    values = pair.to_numpy(dtype=float)
    if not np.isin(values[~np.isnan(values)], [A_BETTER, B_BETTER, TIE]).all():
        raise ValueError("pairwise verdicts must be 1.0 (A), 0.0 (B) or 0.5 (tie)")
    both = pair.notna().all(axis=1)
    agree = pair["first"] == pair["swapped"]
    verdicts = pair["first"].where(agree, TIE).where(both)
    n = int(both.sum())
    judged = pair[both]
    first_wins = int(((judged["first"] == A_BETTER) & (judged["swapped"] == B_BETTER)).sum())
    second_wins = int(((judged["first"] == B_BETTER) & (judged["swapped"] == A_BETTER)).sum())
    inconsistent = int((judged["first"] != judged["swapped"]).sum())

    def rate(count: int) -> float:
        return count / n if n else float("nan")

    return PositionBias(
        consistent_verdicts=verdicts.rename(first.name),
        n=n,
        inconsistent_rate=rate(inconsistent),
        position_bias_rate=rate(first_wins + second_wins),
        first_position_rate=rate(first_wins),
        second_position_rate=rate(second_wins),
    )
