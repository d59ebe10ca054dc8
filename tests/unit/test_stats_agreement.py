"""Judge agreement: κ, α, agreement with human labels and position consistency, against
values computed by hand (the arithmetic is in the comments) and Krippendorff's published
example."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from vlmhyperbench.stats.agreement import (
    cohen_kappa,
    human_agreement,
    krippendorff_alpha,
    pairwise_kappas,
    position_consistency,
)

NAN = np.nan
IDS = [f"s{i}" for i in range(10)]

# Two binary judges on 10 samples that disagree on exactly 2 (20%), both times judge_a says 1
# and judge_b says 0:
#   sample    0 1 2 3 4 5 6 7 8 9
#   judge_a   1 1 1 1 1 1 0 0 0 0     six 1s
#   judge_b   1 1 1 1 0 0 0 0 0 0     four 1s
JUDGE_A = pd.Series([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], index=IDS, dtype=float, name="judge_a")
JUDGE_B = pd.Series([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], index=IDS, dtype=float, name="judge_b")


def from_coincidences(o: np.ndarray) -> float:
    """Nominal α from a coincidence matrix: 1 − (n − 1)(n − Σ o_cc) / (n² − Σ n_c²)."""
    n_c = o.sum(axis=0)
    n = n_c.sum()
    return 1 - (n - 1) * (n - np.trace(o)) / (n**2 - (n_c**2).sum())


def test_kappa_of_two_judges_that_disagree_on_a_fifth() -> None:
    # Contingency (a rows, b columns):   b=0  b=1
    #                              a=0    4    0
    #                              a=1    2    4
    # p_o = (4 + 4) / 10 = 0.8
    # p_e = P(a=0)·P(b=0) + P(a=1)·P(b=1) = 0.4·0.6 + 0.6·0.4 = 0.48
    # κ = (0.8 − 0.48) / (1 − 0.48) = 0.32 / 0.52 = 8/13 ≈ 0.6154
    agreement = cohen_kappa(JUDGE_A, JUDGE_B)
    assert agreement.n == 10
    assert agreement.observed == pytest.approx(0.8)
    assert agreement.expected == pytest.approx(0.48)
    assert agreement.kappa == pytest.approx(8 / 13)
    assert cohen_kappa(JUDGE_B, JUDGE_A).kappa == pytest.approx(8 / 13)  # symmetric


def test_alpha_of_the_same_two_judges_from_the_coincidence_matrix() -> None:
    # Every sample has m = 2 values, so each ordered pair of its values adds 1/(m − 1) = 1:
    #   four (1, 1) samples → o_11 = 4·2 = 8; four (0, 0) → o_00 = 8;
    #   two (1, 0) samples → o_10 = o_01 = 2.
    #          0   1  | n_c
    #     0    8   2  | 10
    #     1    2   8  | 10       n = 20
    # α = 1 − (n − 1)(n − Σ o_cc) / (n² − Σ n_c²) = 1 − 19·(20 − 16) / (400 − 200)
    #   = 1 − 76/200 = 0.62
    o = np.array([[8, 2], [2, 8]], dtype=float)
    assert from_coincidences(o) == pytest.approx(0.62)
    ratings = pd.concat([JUDGE_A, JUDGE_B], axis=1)
    assert krippendorff_alpha(ratings, "nominal") == pytest.approx(0.62)
    # With two values 0 < 1 every level gives the same δ up to a factor: the same α.
    assert krippendorff_alpha(ratings, "interval") == pytest.approx(0.62)
    assert krippendorff_alpha(ratings, "ordinal") == pytest.approx(0.62)


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: four observers,
# twelve units, values 1–5, missing values; unit 12 has a single value (not pairable).
KRIPPENDORFF_2011 = pd.DataFrame(
    {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        "C": [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    },
    index=[f"u{i}" for i in range(1, 13)],
)


def test_krippendorffs_published_example_with_missing_values() -> None:
    # The paper's coincidence matrix over units 1–11. Each unit with m values adds 1/(m − 1)
    # per ordered pair of its values: e.g. unit 2 = (2, 2, 3, 2), m = 4, has 3·2 ordered
    # (2, 2) pairs (+6/3 = 2 to o_22) and three (2, 3) pairs (+3/3 = 1 to o_23 and to o_32).
    #          1     2     3     4    5  | n_c
    #     1    7    4/3   1/3   1/3   0  |  9
    #     2   4/3   10    4/3   1/3   0  | 13
    #     3   1/3   4/3    8    1/3   0  | 10
    #     4   1/3   1/3   1/3    4    0  |  5
    #     5    0     0     0     0    3  |  3         n = 40
    # α_nominal = 1 − 39·(40 − 32) / (1600 − (81 + 169 + 100 + 25 + 9))
    #           = 1 − 312/1216 = 0.7434 (published: 0.743)
    t = 1 / 3
    o = np.array(
        [
            [7, 4 * t, t, t, 0],
            [4 * t, 10, 4 * t, t, 0],
            [t, 4 * t, 8, t, 0],
            [t, t, t, 4, 0],
            [0, 0, 0, 0, 3],
        ]
    )
    assert from_coincidences(o) == pytest.approx(1 - 312 / 1216)
    assert krippendorff_alpha(KRIPPENDORFF_2011, "nominal") == pytest.approx(1 - 312 / 1216)
    assert round(krippendorff_alpha(KRIPPENDORFF_2011, "nominal"), 3) == 0.743
    # The paper's other levels for the same data.
    assert round(krippendorff_alpha(KRIPPENDORFF_2011, "ordinal"), 3) == 0.815
    assert round(krippendorff_alpha(KRIPPENDORFF_2011, "interval"), 3) == 0.849


def test_alpha_ignores_samples_rated_once_and_takes_labels() -> None:
    without_unit_12 = KRIPPENDORFF_2011.drop(index="u12")
    assert krippendorff_alpha(without_unit_12, "nominal") == pytest.approx(1 - 312 / 1216)
    # Labels that are not numbers are categories (nominal only).
    names = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    labels = KRIPPENDORFF_2011.apply(lambda column: column.map(names))
    assert krippendorff_alpha(labels, "nominal") == pytest.approx(1 - 312 / 1216)
    with pytest.raises(TypeError):
        krippendorff_alpha(labels, "ordinal")
    with pytest.raises(ValueError):
        krippendorff_alpha(KRIPPENDORFF_2011, "ratio")  # type: ignore[arg-type]


def test_pairwise_kappas_cover_every_pair_in_sorted_order() -> None:
    # judge_c: judge_a with sample 9 flipped to 1 (one disagreement with a, three with b).
    judge_c = JUDGE_A.copy().rename("judge_c")
    judge_c.iloc[9] = 1.0
    ratings = pd.concat([judge_c, JUDGE_B, JUDGE_A], axis=1)  # columns out of order
    table = pairwise_kappas(ratings)
    assert list(table.columns) == ["judge_a", "judge_b", "kappa", "n", "observed", "expected"]
    assert list(zip(table["judge_a"], table["judge_b"], strict=True)) == [
        ("judge_a", "judge_b"),
        ("judge_a", "judge_c"),
        ("judge_b", "judge_c"),
    ]
    assert table["n"].tolist() == [10, 10, 10]
    # a vs c: a has six 1s, c seven; they disagree on one sample.
    #   p_o = 0.9, p_e = 0.6·0.7 + 0.4·0.3 = 0.54, κ = 0.36/0.46 = 18/23
    # b vs c: b has four 1s, c seven; they disagree on three (samples 4, 5, 9).
    #   p_o = 0.7, p_e = 0.4·0.7 + 0.6·0.3 = 0.46, κ = 0.24/0.54 = 4/9
    assert table["kappa"].tolist() == pytest.approx([8 / 13, 18 / 23, 4 / 9])
    assert table["observed"].tolist() == pytest.approx([0.8, 0.9, 0.7])


def test_missing_verdicts_are_left_out() -> None:
    # Sample 0 (both 1) and sample 4 (a 1, b 0) lose one verdict each: 8 samples remain,
    #   b=0 b=1
    #   a=0  4   0
    #   a=1  1   3      p_o = 7/8, p_e = (4/8)(5/8) + (4/8)(3/8) = 0.5, κ = 0.375/0.5 = 0.75
    a = JUDGE_A.copy()
    b = JUDGE_B.copy()
    a.iloc[0] = NAN
    b.iloc[4] = NAN
    agreement = cohen_kappa(a, b)
    assert agreement.n == 8
    assert agreement.observed == pytest.approx(7 / 8)
    assert agreement.expected == pytest.approx(0.5)
    assert agreement.kappa == pytest.approx(0.75)
    # The series are aligned on the index, not by position.
    assert cohen_kappa(a.iloc[::-1], b).kappa == pytest.approx(0.75)


def test_undefined_agreement_is_nan_not_an_error() -> None:
    ones = pd.Series(1.0, index=IDS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # One shared label throughout: p_e = 1.
        same = cohen_kappa(ones, ones)
        assert np.isnan(same.kappa) and same.n == 10 and same.observed == 1.0
        # No sample rated by both.
        apart = cohen_kappa(JUDGE_A.iloc[:5], JUDGE_B.iloc[5:])
        assert np.isnan(apart.kappa) and apart.n == 0 and np.isnan(apart.observed)
        # α: a single value, no sample rated twice, nothing at all.
        assert np.isnan(krippendorff_alpha(pd.concat([ones, ones], axis=1), "nominal"))
        once = pd.DataFrame({"a": [1.0, NAN, 0.0], "b": [NAN, 1.0, NAN]})
        assert np.isnan(krippendorff_alpha(once, "nominal"))
        assert np.isnan(krippendorff_alpha(pd.DataFrame({"a": [NAN], "b": [NAN]}), "interval"))
        # Two values, but only one among the samples rated twice.
        pairable_once = pd.DataFrame({"a": [1.0, 0.0], "b": [1.0, NAN]})
        assert np.isnan(krippendorff_alpha(pairable_once, "nominal"))
        # Position consistency with no pair judged in both orders.
        empty = position_consistency(pd.Series([1.0, NAN]), pd.Series([NAN, 0.0]))
        assert empty.n == 0 and np.isnan(empty.inconsistent_rate)


def test_judge_against_human_labels() -> None:
    # Nine samples; the human did not label s8, the judge gave no verdict on s9.
    #   sample  s0 s1 s2 s3 s4 s5 s6 s7 s8 s9
    #   human   a  a  a  b  b  b  c  c  -  a
    #   judge   a  a  b  b  b  c  c  a  b  -
    # On the 8 with both — confusion (human rows, judge columns):
    #        a  b  c | human
    #    a   2  1  0 |  3
    #    b   0  2  1 |  3
    #    c   1  0  1 |  2
    #  judge 3  3  2 |  8
    # accuracy = p_o = 5/8; p_e = (3·3 + 3·3 + 2·2)/64 = 22/64
    # κ = (40/64 − 22/64) / (1 − 22/64) = 18/42 = 3/7
    index = [f"s{i}" for i in range(10)]
    human = pd.Series(["a", "a", "a", "b", "b", "b", "c", "c", None, "a"], index=index)
    judge = pd.Series(["a", "a", "b", "b", "b", "c", "c", "a", "b", None], index=index)
    result = human_agreement(judge, human)
    assert result.n == 8
    assert result.accuracy == pytest.approx(5 / 8)
    assert result.kappa == pytest.approx(3 / 7)
    expected = pd.DataFrame(
        [[2, 1, 0], [0, 2, 1], [1, 0, 1]],
        index=pd.Index(["a", "b", "c"], name="human"),
        columns=pd.Index(["a", "b", "c"], name="judge"),
    )
    pd.testing.assert_frame_equal(result.confusion, expected, check_dtype=False)


def test_confusion_lists_labels_either_side_used() -> None:
    # Binary human labels; the judge also says 0.5 (tie) once, a label the human never uses.
    human = pd.Series([1.0, 0.0, 1.0, 0.0])
    judge = pd.Series([1.0, 0.5, 1.0, 1.0])
    result = human_agreement(judge, human)
    assert result.confusion.index.tolist() == [0.0, 0.5, 1.0]
    assert result.confusion.columns.tolist() == [0.0, 0.5, 1.0]
    assert result.confusion.to_numpy().tolist() == [[0, 1, 1], [0, 0, 0], [0, 0, 2]]
    assert result.accuracy == pytest.approx(0.5)


def test_position_consistency_counts_inconsistent_and_biased_pairs() -> None:
    # 1.0: A better, 0.0: B better, 0.5: tie; `swapped` is already mapped back.
    #   pair   first swapped  → verdict  note
    #   p0      1     1           1      consistent
    #   p1      1     0          0.5     first position won twice
    #   p2      0     1          0.5     second position won twice
    #   p3     0.5   0.5         0.5     consistent tie
    #   p4      1    0.5         0.5     inconsistent, not position-biased
    #   p5      0     0           0      consistent
    #   p6      1     0          0.5     first position won twice
    #   p7     0.5    1          0.5     inconsistent, not position-biased
    #   p8      1     -          NaN     swapped order not judged
    #   p9      -     1          NaN
    # n = 8; inconsistent: p1 p2 p4 p6 p7 = 5/8; position-biased: p1 p2 p6 = 3/8
    # (first position 2/8, second 1/8).
    index = [f"p{i}" for i in range(10)]
    first = pd.Series([1, 1, 0, 0.5, 1, 0, 1, 0.5, 1, NAN], index=index, name="verdict")
    swapped = pd.Series([1, 0, 1, 0.5, 0.5, 0, 0, 1, NAN, 1], index=index)
    result = position_consistency(first, swapped)
    assert result.n == 8
    assert result.inconsistent_rate == pytest.approx(5 / 8)
    assert result.position_bias_rate == pytest.approx(3 / 8)
    assert result.first_position_rate == pytest.approx(2 / 8)
    assert result.second_position_rate == pytest.approx(1 / 8)
    expected = pd.Series(
        [1, 0.5, 0.5, 0.5, 0.5, 0, 0.5, 0.5, NAN, NAN], index=index, name="verdict"
    )
    pd.testing.assert_series_equal(result.consistent_verdicts, expected)


def test_position_consistency_rejects_codes_that_are_not_verdicts() -> None:
    with pytest.raises(ValueError):
        position_consistency(pd.Series([1.0, 2.0]), pd.Series([1.0, 0.0]))
