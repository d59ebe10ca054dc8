"""DuckDB pages of a task against pandas over the same parquet files: filters, sorts, paging,
per-field rows averaged per sample, and nothing from a file taken for SQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.synthetic_results import write_synthetic_results
from vlmhyperbench.explorer.catalog import open_catalog
from vlmhyperbench.explorer.filters import PAGE_SIZE, checked, parse_query
from vlmhyperbench.explorer.query import ScoreStore
from vlmhyperbench.metrics.scoring import write_score_parquet

TASK = "task_00"
MODELS = ["model-00", "model-01", "model-02"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    root = write_synthetic_results(
        tmp_path_factory.mktemp("query") / "results", models=3, tasks=1, metrics=2, samples=120
    )
    # model-02's main metric as per-field rows: two rows a sample, their mean is the old value
    path = root / "scores" / "model-02" / TASK / "metric_00.parquet"
    frame = pd.read_parquet(path)
    halves = [frame.assign(value=frame["value"] * 2, field="a"), frame.assign(value=0.0, field="b")]
    write_score_parquet(pd.concat(halves, ignore_index=True), path)
    store = ScoreStore(open_catalog(root))
    yield store
    store.close()


def oracle(store: ScoreStore, metric: str = "metric_00") -> pd.DataFrame:
    """samples × models values, read with pandas (per-sample means)."""
    root = store.catalog.root
    frames = {
        m: pd.read_parquet(root / "scores" / m / TASK / f"{metric}.parquet")
        .groupby("id")["value"]
        .mean()
        for m in MODELS
    }
    return pd.DataFrame(frames)


def ids(store: ScoreStore, query: str, page: int | None = None) -> tuple[list[str], int]:
    f = checked(
        parse_query(query + (f"&page={page}" if page else "")),
        models=MODELS,
        metrics=["metric_00", "metric_01"],
        group_columns=store.tables(TASK).group_columns,
    )
    assert f.problems == ()
    found = store.page(TASK, f)
    return found.ids, found.total


def test_pages_of_fifty_cover_every_sample_once(store: ScoreStore) -> None:
    pages = [ids(store, "", page) for page in (1, 2, 3, 4)]
    assert [len(p[0]) for p in pages] == [PAGE_SIZE, PAGE_SIZE, 20, 0]
    assert all(total == 120 for _, total in pages)
    assert [i for found, _ in pages for i in found] == sorted(oracle(store).index)


def test_per_field_rows_are_averaged_per_sample(store: ScoreStore) -> None:
    found = store.page(TASK, parse_query("model=model-02"))
    values = {i: found.answers[(i, "model-02")]["value"] for i in found.ids}
    expected = oracle(store)["model-02"]
    assert values == pytest.approx({i: expected[i] for i in found.ids})


def test_pair_threshold_errors_and_groups_match_pandas(store: ScoreStore) -> None:
    table = oracle(store)
    a_right_b_wrong = table[(table["model-02"] >= 0.5) & (table["model-00"] < 0.5)].index
    assert ids(store, "right=model-02&wrong=model-00")[1] == len(a_right_b_wrong) > 0
    below = table[(table[MODELS] < 0.5).any(axis=1)].index
    assert ids(store, "below=0.5")[1] == len(below)
    only = table[table["model-01"] > 0.3].index
    assert ids(store, "above=0.3&of=model-01")[1] == len(only)
    raw = pd.read_parquet(store.catalog.root / "scores" / "model-00" / TASK / "metric_00.parquet")
    failed = sorted(raw.loc[raw["error"].notna(), "id"])
    assert ids(store, "errors=1&model=model-00")[0] == failed and failed
    blur = sorted(raw.loc[raw["subset"] == "blur", "id"])
    assert sorted(ids(store, "g.subset=blur&page=1")[0] + ids(store, "g.subset=blur", 2)[0]) == blur


def test_sorts_by_score_and_by_disagreement(store: ScoreStore) -> None:
    table = oracle(store, "metric_01")
    got, _ = ids(store, "metric=metric_01&sort=score:model-01&order=desc")
    expected = table.reset_index().sort_values(["model-01", "id"], ascending=[False, True])
    assert got == expected["id"].tolist()[:PAGE_SIZE]
    spread = table[MODELS].std(axis=1, ddof=0)
    got, _ = ids(store, "metric=metric_01&sort=disagreement")
    top = spread.sort_values(ascending=False)
    assert np.allclose(spread[got].to_numpy(), top.to_numpy()[:PAGE_SIZE])


def test_search_is_a_bound_parameter(store: ScoreStore) -> None:
    assert ids(store, "q=иванов")[1] > 0  # some answers are "Иванов"
    for hostile in ("'; DROP TABLE s0; --", "%", "_", '")'):
        assert ids(store, "q=" + hostile.replace("%", "%25"))[1] == 0
    assert ids(store, "")[1] == 120  # the tables are still there


def test_a_sample_has_every_metric_of_every_model(store: ScoreStore) -> None:
    sample = oracle(store).index[0]
    values = store.sample_values(TASK, sample)
    assert sorted(values) == sorted(
        (m, metric) for m in MODELS for metric in ("metric_00", "metric_01")
    )
    assert values[("model-02", "metric_00")][1] == 2 and values[("model-02", "metric_01")][1] == 1
    table = oracle(store)
    assert values[("model-02", "metric_00")][0] == pytest.approx(table.at[sample, "model-02"])


def test_the_store_reads_what_is_there(tmp_path: Path) -> None:
    root = write_synthetic_results(tmp_path / "results", models=2, tasks=1, metrics=1, samples=8)
    (root / "scores" / "model-01" / TASK / "metric_00.parquet").unlink()
    store = ScoreStore(open_catalog(root))
    found = store.page(TASK, parse_query(""))
    assert found.total == 8 and {m for _, m in found.answers} == {"model-00"}
    store.close()


def test_an_unreadable_score_file_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    root = write_synthetic_results(tmp_path / "results", models=2, tasks=1, metrics=2, samples=8)
    for metric in ("metric_00", "metric_01"):
        path = root / "scores" / "model-01" / TASK / f"{metric}.parquet"
        path.write_bytes(path.read_bytes()[:100])  # truncated
    store = ScoreStore(open_catalog(root))
    for query in ("", "metric=metric_01&sort=disagreement"):
        found = store.page(TASK, parse_query(query))
        assert found.total == 8 and {m for _, m in found.answers} == {"model-00"}
    values = store.sample_values(TASK, found.ids[0])
    assert {model for model, _ in values} == {"model-00"}
    warned = [w for w in store.catalog.warnings if "model-01" in w and "unreadable" in w]
    assert len(warned) == 2
    store.close()
