"""The one resampling engine: clusters, chunked draws, and the statistics built on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vlmhyperbench.metrics.aggregate import _clusters, aggregate
from vlmhyperbench.metrics.scoring import write_score_parquet
from vlmhyperbench.reporting.results import read_sample_scores
from vlmhyperbench.stats import resampling
from vlmhyperbench.stats.resampling import (
    Resampling,
    bootstrap_statistic,
    bootstrap_sums,
    cluster_index,
    cluster_labels,
    cluster_sums,
    draws,
    row_resamples,
    unit_counts,
)


def test_a_row_is_its_page_where_it_has_one_else_its_sample() -> None:
    labels = cluster_labels(
        np.array(["q1", "q2", "q3", "q4", "q5"], dtype=object),
        np.array(["p1", None, "p1", np.nan, ""], dtype=object),
    )
    assert labels.tolist() == ["d:p1", "s:q2", "d:p1", "s:q4", "s:q5"]
    assert cluster_labels(np.array([3, 4])).tolist() == ["s:3", "s:4"]


def test_score_files_and_the_report_cluster_alike(tmp_path) -> None:
    # One helper: the aggregate's CIs and the report's paired tests draw the same units.
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "value": [1.0, 0.0, 1.0, 0.5],
            "doc_id": ["page-1", None, "page-1", ""],
        }
    )
    path = tmp_path / "scores.parquet"
    write_score_parquet(frame, path)
    read = read_sample_scores(path, with_text=False)
    assert read.clusters.tolist() == _clusters(frame).tolist()
    assert read.clusters.tolist() == ["d:page-1", "s:b", "d:page-1", "s:d"]


def test_an_empty_doc_id_is_no_page() -> None:
    values = np.random.default_rng(0).random(30)
    plain = pd.DataFrame({"id": [f"q{k}" for k in range(30)], "value": values})
    empty = plain.assign(doc_id="")
    assert aggregate(empty, n_boot=300, seed=2) == aggregate(plain, n_boot=300, seed=2)


def test_cluster_index_and_sums() -> None:
    inverse, n_clusters = cluster_index(np.array(["d:b", "s:1", "d:b", "d:a"]))
    assert inverse.tolist() == [1, 2, 1, 0] and n_clusters == 3
    stats = np.array([[1.0, 1.0], [2.0, 1.0], [4.0, 1.0], [8.0, 1.0]])
    expected = pd.DataFrame(stats).groupby(inverse).sum().to_numpy()
    assert np.array_equal(cluster_sums(stats, inverse, n_clusters), expected)
    assert cluster_index(np.array([], dtype=str))[1] == 0


@pytest.mark.parametrize("n_units", [2, 7, 301])
def test_the_memory_limit_never_changes_a_draw(monkeypatch, n_units: int) -> None:
    def all_draws() -> np.ndarray:
        return np.concatenate(list(draws(n_units, 97, np.random.default_rng(n_units))))

    whole = all_draws()
    monkeypatch.setattr(resampling, "MAX_CELLS", 2 * n_units)
    assert len(list(draws(n_units, 97, np.random.default_rng(0)))) == 49  # 2 per chunk
    assert np.array_equal(all_draws(), whole)
    assert whole.shape == (97, n_units)


def test_counts_say_how_often_each_unit_is_drawn() -> None:
    index = np.array([[0, 0, 2], [1, 2, 2]])
    assert unit_counts(index, 3).tolist() == [[2, 0, 1], [0, 1, 2]]
    counts = Resampling.draw(np.array(["a", "b", "b", "c"]), 40, seed=1).counts
    assert counts.shape == (40, 3) and np.all(counts.sum(axis=1) == 3)


def test_a_mean_resampled_through_counts_equals_the_mean_of_the_drawn_values() -> None:
    values = np.random.default_rng(3).normal(size=57)
    stats = np.column_stack([values, np.ones_like(values)])
    through_counts = bootstrap_sums(
        stats, lambda s: s[..., 0] / s[..., 1], 500, np.random.default_rng(9)
    )
    drawn = bootstrap_statistic(values, lambda v: v.mean(axis=-1), 500, np.random.default_rng(9))
    assert len(drawn) == 500
    assert np.allclose(through_counts, drawn, rtol=0, atol=1e-12)
    # …and the paired tests' draw with the same seed is the same resampling.
    paired = Resampling.draw(np.arange(57).astype(str), 500, seed=9)
    assert np.allclose(paired.counts @ values / 57, drawn, rtol=0, atol=1e-12)


def test_row_resamples_draw_whole_clusters() -> None:
    labels = np.array(["d:x", "d:y", "d:x", "s:3", "d:y", "d:y"])
    inverse, n_clusters = cluster_index(labels)
    sizes = np.bincount(inverse)
    for rows in row_resamples(len(labels), labels, 50, np.random.default_rng(4)):
        rows_per_cluster = np.bincount(inverse[rows], minlength=n_clusters)
        # Every cluster drawn comes with all its rows, and each resample draws n_clusters.
        assert np.all(rows_per_cluster % sizes == 0)
        assert (rows_per_cluster // sizes).sum() == n_clusters
    plain = list(row_resamples(4, None, 10, np.random.default_rng(4)))
    assert len(plain) == 10 and all(rows.shape == (4,) for rows in plain)
