"""DuckDB over a run's score parquets: a task's samples filtered, sorted and paged.

Per task, on first use, the main metric's file of every model is read once (about 40 ms for
20 models × 1,000 samples) into three in-memory tables: the samples (id, question, reference,
the values of each group column), the answers (model, id, prediction, error) and the main
metric's values; another metric's values are read the first time a page asks for it. Rows are
averaged per sample (NaN left out), as the report's reader does, so per-field metrics give one
value a sample. Tables are named by the task's and metric's positions in the catalog, columns by
position; every name and value from the files travels as a bound parameter or a quoted
identifier. Nothing is written: the database lives in memory (spilling, if ever, goes to a
private temporary folder).
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from vlmhyperbench.explorer.catalog import Catalog
from vlmhyperbench.explorer.filters import PAGE_SIZE, TaskFilter
from vlmhyperbench.reporting.results import score_path

TEXT_COLUMNS = ("question", "reference", "prediction", "error")
ALWAYS_GROUPED = ("subset", "doc_class", "question_type")


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column(name: str, present: set[str]) -> str:
    return f"r.{quoted(name)}" if name in present else "NULL"


@dataclass
class TaskTables:
    """One task's tables: ``s{k}`` samples, ``a{k}`` answers, ``v{k}_{j}`` values of metric j."""

    index: int
    group_columns: list[str]  # in the samples table as g0, g1, …
    values: dict[str, str] = field(default_factory=dict)  # metric → its table
    group_values: dict[str, list[str]] = field(default_factory=dict)

    @property
    def samples(self) -> str:
        return f"s{self.index}"

    @property
    def answers(self) -> str:
        return f"a{self.index}"


@dataclass
class Page:
    total: int
    ids: list[str]
    samples: dict[str, dict[str, Any]]  # id → question, reference, groups
    answers: dict[tuple[str, str], dict[str, Any]]  # (id, model) → prediction, error, value


class ScoreStore:
    """A run's per-sample scores, loaded into DuckDB a task (and metric) at a time."""

    def __init__(self, catalog: Catalog, *, threads: int = 2, memory_limit: str = "1GB") -> None:
        self.catalog = catalog
        self._spill = tempfile.TemporaryDirectory(prefix="vlmhb-view-")
        config = {"threads": threads, "memory_limit": memory_limit}
        self.con = duckdb.connect(":memory:", config={**config, "temp_directory": self._spill.name})
        self._lock = threading.RLock()
        self._tasks: dict[str, TaskTables] = {}

    def _sql(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        """Run ``sql`` to the end (DuckDB refuses new work while a result is unread)."""
        return self.con.execute(sql, params or {}).fetchall()

    def close(self) -> None:
        self.con.close()
        self._spill.cleanup()

    def _files(self, task: str, metrics: list[str]) -> pd.DataFrame:
        """The existing score files of ``task`` for ``metrics``: filename, model, metric."""
        rows = [
            (str(path), model, metric)
            for model in self.catalog.models(task)
            for metric in metrics
            if (path := score_path(self.catalog.root, model, task, metric)).is_file()
        ]
        return pd.DataFrame(rows, columns=["filename", "model", "metric"])

    def _readable(self, files: pd.DataFrame) -> tuple[pd.DataFrame, set[str]]:
        """The ``files`` whose footer reads and that have ``id`` and ``value`` (the others are
        warnings, as the report's gaps), and the union of their columns."""
        keep, names = [], set()
        for path in files["filename"]:
            try:
                columns = pq.read_schema(path).names
            except (OSError, ValueError) as exc:
                self._warn(f"{Path(path).relative_to(self.catalog.root)}: unreadable ({exc})")
                continue
            if "id" not in columns or "value" not in columns:
                self._warn(f"{Path(path).relative_to(self.catalog.root)}: no id or value column")
                continue
            keep.append(path)
            names.update(columns)
        return files[files["filename"].isin(keep)], names

    def _warn(self, warning: str) -> None:
        if warning not in self.catalog.warnings:
            self.catalog.warnings.append(warning)

    def _read(self, files: pd.DataFrame, columns: list[str], name: str) -> None:
        """Table ``name``: the ``files`` read, with their model and metric, ``columns`` cast."""
        self.con.register("explorer_files", files)
        try:
            select = ", ".join(columns)
            self._sql(
                f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT f.model, f.metric, {select} "
                "FROM read_parquet($files, filename = true, union_by_name = true) r "
                "JOIN explorer_files f ON r.filename = f.filename",
                {"files": files["filename"].tolist()},
            )
        finally:
            self.con.unregister("explorer_files")

    def tables(self, task: str) -> TaskTables:
        """The task's tables, read on first use."""
        with self._lock:
            if task not in self._tasks:
                self._tasks[task] = self._load_task(task)
            return self._tasks[task]

    def _load_task(self, task: str) -> TaskTables:
        files, names = self._readable(self._files(task, [self.catalog.primary(task)]))
        wanted = self.catalog.group_columns(task) + list(ALWAYS_GROUPED)
        groups = list(dict.fromkeys(c for c in wanted if c in names))
        t = TaskTables(index=len(self._tasks), group_columns=groups)
        columns = [
            "CAST(r.id AS VARCHAR) AS id",
            "CAST(r.value AS DOUBLE) AS value",
            *(f"CAST({_column(c, names)} AS VARCHAR) AS {c}" for c in TEXT_COLUMNS),
            *(f"CAST(r.{quoted(c)} AS VARCHAR) AS g{k}" for k, c in enumerate(groups)),
        ]
        if files.empty:
            self._sql(
                f"CREATE OR REPLACE TEMP TABLE raw{t.index} (model VARCHAR, "
                "metric VARCHAR, id VARCHAR, value DOUBLE, question VARCHAR, "
                "reference VARCHAR, prediction VARCHAR, error VARCHAR)"
            )
        else:
            self._read(files, columns, f"raw{t.index}")
        self._derive(t, f"raw{t.index}")
        t.values[self.catalog.primary(task)] = self._values(t, f"raw{t.index}", 0)
        self._sql(f"DROP TABLE raw{t.index}")
        for k, column in enumerate(groups):
            found = self._sql(f"SELECT DISTINCT unnest(g{k}) AS g FROM {t.samples} ORDER BY g")
            t.group_values[column] = [row[0] for row in found]
        return t

    def _derive(self, t: TaskTables, raw: str) -> None:
        """The samples and answers tables from the main metric's rows."""
        groups = "".join(
            f", coalesce(list_sort(list(DISTINCT g{k}) FILTER (WHERE g{k} IS NOT NULL)), [])"
            f" AS g{k}"
            for k in range(len(t.group_columns))
        )
        self._sql(
            f"CREATE OR REPLACE TEMP TABLE {t.samples} AS SELECT id, "
            "any_value(question) AS question, any_value(reference) AS reference, "
            "lower(coalesce(any_value(question), '') || chr(10) || "
            f"coalesce(any_value(reference), '')) AS hay{groups} FROM {raw} GROUP BY id"
        )
        self._sql(
            f"CREATE OR REPLACE TEMP TABLE {t.answers} AS SELECT model, id, "
            "any_value(prediction) AS prediction, any_value(error) AS error, "
            f"lower(coalesce(any_value(prediction), '')) AS answer FROM {raw} GROUP BY model, id"
        )

    def _values(self, t: TaskTables, raw: str, j: int) -> str:
        name = f"v{t.index}_{j}"
        self._sql(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT model, id, "
            "avg(CASE WHEN isnan(value) THEN NULL ELSE value END) AS value "
            f"FROM {raw} GROUP BY model, id"
        )
        return name

    def values_table(self, task: str, metric: str) -> str:
        """The table of ``metric``'s per-sample values in ``task`` (read on first use)."""
        with self._lock:
            t = self.tables(task)
            if metric not in t.values:
                j = self.catalog.metrics(task).index(metric)
                files, _ = self._readable(self._files(task, [metric]))
                raw = f"raw{t.index}_{j}"
                columns = ["CAST(r.id AS VARCHAR) AS id", "CAST(r.value AS DOUBLE) AS value"]
                if files.empty:
                    self._sql(
                        f"CREATE OR REPLACE TEMP TABLE {raw} (model VARCHAR, "
                        "metric VARCHAR, id VARCHAR, value DOUBLE)"
                    )
                else:
                    self._read(files, columns, raw)
                t.values[metric] = self._values(t, raw, j)
                self._sql(f"DROP TABLE {raw}")
            return t.values[metric]

    def page(self, task: str, f: TaskFilter, size: int = PAGE_SIZE) -> Page:
        """The samples of ``task`` that pass ``f`` (checked), in its order: page ``f.page`` of
        ``size`` samples."""
        metric, shown = self.catalog.in_view(task, f)
        higher = self.catalog.higher_is_better(task, metric)
        with self._lock:
            t = self.tables(task)
            values = self.values_table(task, metric)
            sql, params = page_sql(t, values, f, shown=shown, higher=higher, size=size)
            found = self._sql(sql, params)
            total = found[0][-1] if found else self._count(sql, params)
            ids = [row[0] for row in found]
            return Page(
                total=total,
                ids=ids,
                samples={row[0]: self._sample_row(t, row) for row in found},
                answers=self._answers(t, values, ids, shown),
            )

    def _count(self, sql: str, params: dict[str, Any]) -> int:
        """The number of matching samples when the page itself is empty (past the last)."""
        counted = {**params, "offset": 0}
        found = self._sql(f"SELECT max(total) FROM ({sql})", counted)
        return int(found[0][0] or 0) if found else 0

    def sample_row(self, task: str, sample_id: str) -> dict[str, Any] | None:
        """One sample's question, reference and groups, as the score files give them."""
        with self._lock:
            t = self.tables(task)
            groups = "".join(f", g{k}" for k in range(len(t.group_columns)))
            found = self._sql(
                f"SELECT id, question, reference{groups} FROM {t.samples} WHERE id = $id",
                {"id": sample_id},
            )
            return self._sample_row(t, found[0]) if found else None

    @staticmethod
    def _sample_row(t: TaskTables, row: tuple) -> dict[str, Any]:
        groups = {c: list(row[3 + k] or []) for k, c in enumerate(t.group_columns)}
        return {"id": row[0], "question": row[1], "reference": row[2], "groups": groups}

    def _answers(
        self, t: TaskTables, values: str, ids: list[str], shown: list[str]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        if not ids:
            return {}
        found = self._sql(
            f"SELECT a.id, a.model, a.prediction, a.error, v.value FROM {t.answers} a "
            f"LEFT JOIN {values} v ON a.model = v.model AND a.id = v.id "
            "WHERE list_contains($ids, a.id) AND list_contains($shown, a.model)",
            {"ids": ids, "shown": shown},
        )
        return {(i, m): {"prediction": p, "error": e, "value": v} for i, m, p, e, v in found}

    def sample_values(self, task: str, sample_id: str) -> dict[tuple[str, str], tuple]:
        """Every metric's value of one sample per model: (model, metric) → (value or None,
        how many score rows the sample has, e.g. one per field)."""
        files = self._files(task, self.catalog.metrics(task))
        with self._lock:
            try:
                found = self._sample_values(files, sample_id)
            except duckdb.Error:  # a truncated or foreign file: read the others
                found = self._sample_values(self._readable(files)[0], sample_id)
        return {(model, metric): (value, rows) for model, metric, value, rows in found}

    def _sample_values(self, files: pd.DataFrame, sample_id: str) -> list[tuple]:
        if files.empty:
            return []
        self.con.register("explorer_files", files)
        try:
            return self._sql(
                "SELECT f.model, f.metric, "
                "avg(CASE WHEN isnan(CAST(r.value AS DOUBLE)) THEN NULL "
                "ELSE CAST(r.value AS DOUBLE) END) AS value, count(*) AS rows "
                "FROM read_parquet($files, filename = true, union_by_name = true) r "
                "JOIN explorer_files f ON r.filename = f.filename "
                "WHERE CAST(r.id AS VARCHAR) = $id GROUP BY f.model, f.metric",
                {"files": files["filename"].tolist(), "id": sample_id},
            )
        finally:
            self.con.unregister("explorer_files")


def page_sql(
    t: TaskTables, values: str, f: TaskFilter, *, shown: list[str], higher: bool, size: int
) -> tuple[str, dict[str, Any]]:
    """The page query: sample rows (id, question, reference, g…, total) for filter ``f``."""
    params: dict[str, Any] = {"shown": shown, "offset": (f.page - 1) * size}
    per = ["stddev_pop(value) FILTER (WHERE list_contains($shown, model)) AS spread"]
    where = ["true"]
    right = ">=" if higher else "<="
    if f.sort_model:
        per.append("max(value) FILTER (WHERE model = $sort_model) AS sort_value")
        params["sort_model"] = f.sort_model
    if f.right or f.wrong:
        params["cut"] = f.cut
    if f.right:
        per.append(f"bool_or(value {right} $cut) FILTER (WHERE model = $right) AS a_right")
        where.append("per.a_right")
        params["right"] = f.right
    if f.wrong:
        per.append(f"bool_or(NOT (value {right} $cut)) FILTER (WHERE model = $wrong) AS b_wrong")
        where.append("per.b_wrong")
        params["wrong"] = f.wrong
    in_range = []
    for key, op in (("below", "<"), ("above", ">")):
        if getattr(f, key) is not None:
            in_range.append(f"value {op} ${key}")
            params[key] = getattr(f, key)
    if in_range:
        scope = "model = $of" if f.of else "list_contains($shown, model)"
        per.append(f"bool_or({' AND '.join(in_range)}) FILTER (WHERE {scope}) AS in_range")
        where.append("per.in_range")
        if f.of:
            params["of"] = f.of
    answers = ["true AS any_answer"]
    if f.errors:
        answers.append("bool_or(error IS NOT NULL) AS failed")
        where.append("ans.failed")
    if f.q.strip():
        answers.append("bool_or(contains(answer, $q)) AS hit")
        where.append("(contains(s.hay, $q) OR coalesce(ans.hit, false))")
        params["q"] = f.q.strip().lower()
    for k, (column, value) in enumerate(f.groups):
        where.append(f"list_contains(s.g{t.group_columns.index(column)}, $group{k})")
        params[f"group{k}"] = value
    groups = "".join(f", s.g{k}" for k in range(len(t.group_columns)))
    sql = (
        f"WITH per AS (SELECT id, {', '.join(per)} FROM {values} GROUP BY id), "
        f"ans AS (SELECT id, {', '.join(answers)} FROM {t.answers} "
        "WHERE list_contains($shown, model) GROUP BY id) "
        f"SELECT s.id, s.question, s.reference{groups}, count(*) OVER () AS total "
        f"FROM {t.samples} s LEFT JOIN per ON per.id = s.id LEFT JOIN ans ON ans.id = s.id "
        f"WHERE {' AND '.join(where)} ORDER BY {_order(f)} LIMIT {int(size)} OFFSET $offset"
    )
    return sql, params


def _order(f: TaskFilter) -> str:
    direction = "DESC" if f.descending else "ASC"
    if f.sort == "disagreement":
        return f"per.spread {direction} NULLS LAST, s.id"
    if f.sort_model:
        return f"per.sort_value {direction} NULLS LAST, s.id"
    return f"s.id {direction}"
