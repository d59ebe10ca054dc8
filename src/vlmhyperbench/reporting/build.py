"""Build ``results/report/`` from ``results/`` alone: page, tables, figures, CSVs, provenance.

Same inputs, same bytes: nothing reads the clock, the locale, the time zone or the folder's
absolute path; every listing is sorted; floats are formatted with fixed digits.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vlmhyperbench.metrics.aggregate import GROUP_COLUMNS
from vlmhyperbench.reporting import figures, judges, mws_vision, perf, settings, tables
from vlmhyperbench.reporting.compare import compare_baseline, compare_run
from vlmhyperbench.reporting.html import render_index, svg_data_uri
from vlmhyperbench.reporting.leaderboard import render_leaderboard
from vlmhyperbench.reporting.provenance import provenance_document, provenance_rows
from vlmhyperbench.reporting.results import Results, load_results
from vlmhyperbench.reporting.robustness import by_severity, robustness_table
from vlmhyperbench.reporting.serving import (
    error_kinds,
    pareto_front,
    performance_table,
    worst_samples,
)
from vlmhyperbench.reporting.summary import OVERALL
from vlmhyperbench.reporting.variants import (
    Variants,
    group_order,
    grouped_rows,
    load_variants,
    name_order,
    run_pairs,
    slug,
    unlisted,
)
from vlmhyperbench.runtime.io import atomic_write

log = logging.getLogger("vlmhyperbench.report")
CSV_FLOAT = "%.6g"


class _Stages:
    """Logs how long each stage of the build took (for the benchmark; not in any output)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def done(self, what: str) -> None:
        now = time.perf_counter()
        log.info("%s: %.1f s", what, now - self.last)
        self.last = now


@dataclass
class Report:
    out: Path
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, newline="") as handle:
        handle.write(text)
    return path


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    return _write_text(path, frame.to_csv(index=False, float_format=CSV_FLOAT, lineterminator="\n"))


def _clean_folder(folder: Path, suffixes: tuple[str, ...]) -> None:
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.suffix in suffixes:
                path.unlink()


def _rank(rows: pd.DataFrame, higher: bool) -> pd.DataFrame:
    key = rows["value"] if higher else -rows["value"]
    return rows.assign(_key=key.fillna(-math.inf)).sort_values(
        ["_key", "model"], ascending=[False, True], kind="stable"
    )


# --- sections --------------------------------------------------------------------------------


def _leaderboard(results: Results, task: str, variants: Variants | None) -> dict[str, Any]:
    """A task's leaderboard rows, best first on its main metric; with variants, grouped under
    their base model (groups by their best member)."""
    overall = results.overall[results.overall["task"] == task]
    metrics = results.metrics(task)
    primary = metrics[0]
    higher = {m: results.higher_is_better(task, m) for m in metrics}
    order = _rank(overall[overall["metric"] == primary], higher[primary])["model"].tolist()
    best = {}
    for metric in metrics:
        values = overall.loc[overall["metric"] == metric, "value"].dropna().round(3)
        best[metric] = None if values.empty else (values.max() if higher[metric] else values.min())
    entries = {(r.model, r.metric): r for r in overall.itertuples()}
    rows = []
    for model in order:
        cells = []
        for metric in metrics:
            entry = entries.get((model, metric))
            if entry is None:
                cells.append(None)
                continue
            value = None if math.isnan(entry.value) else float(entry.value)
            cells.append(
                {
                    "value": value,
                    "ci_low": entry.ci_low,
                    "ci_high": entry.ci_high,
                    "best": value is not None and round(value, 3) == best[metric],
                }
            )
        first = entries[(model, primary)]
        rows.append(
            {
                "model": model,
                "cells": cells,
                "n": int(first.n_samples) if first.n_samples == first.n_samples else None,
                "error_rate": None if pd.isna(first.error_rate) else float(first.error_rate),
                "group_head": None,
                "in_group": False,
            }
        )
    groups = None
    if variants is not None and variants.grouped(order):
        rows = grouped_rows(rows, variants.group)
        order = [row["model"] for row in rows]
        groups = group_order(order, variants.group)
    return {"metrics": metrics, "higher": higher, "rows": rows, "order": order, "groups": groups}


def _groups(results: Results, task: str) -> tuple[list[dict[str, Any]], pd.DataFrame, list[str]]:
    summary = results.summary
    metric = results.primary(task)
    part = summary[
        (summary["task"] == task) & (summary["metric"] == metric) & (summary["group_by"] != OVERALL)
    ]
    tables_out, columns = [], []
    for column in GROUP_COLUMNS:
        rows = part[part["group_by"] == column]
        if rows.empty:
            continue
        columns.append(column)
        labels = sorted(rows["group"].unique())
        values = {(r.model, r.group): r for r in rows.itertuples()}
        body = []
        for model in sorted(rows["model"].unique()):
            cells = []
            for label in labels:
                entry = values.get((model, label))
                cells.append(
                    None
                    if entry is None
                    else {"value": entry.value, "ci_low": entry.ci_low, "ci_high": entry.ci_high}
                )
            body.append({"model": model, "cells": cells})
        tables_out.append({"column": column, "labels": labels, "rows": body})
    return tables_out, part, columns


def _sentence(row: Any) -> str:
    if row.significant:
        better = "higher" if row.higher_is_better else "lower"
        # the gain and its CI in the better direction (a lower error: a negative difference)
        low, high = (row.ci_low, row.ci_high) if row.diff >= 0 else (-row.ci_high, -row.ci_low)
        return (
            f"{row.model_a} beats {row.model_b} by {abs(row.diff):.3f} "
            f"[{low:.3f}, {high:.3f}] ({better} is better), "
            f"Holm-adjusted p = {'< 0.001' if row.p_holm < 0.001 else f'{row.p_holm:.3f}'}"
        )
    if row.mdd == row.mdd and row.mdd > 0:
        return (
            f"{row.model_a} vs {row.model_b}: no difference detectable below "
            f"{row.mdd:.3f} with {row.n} samples ({row.n_clusters} clusters)"
        )
    return f"{row.model_a} vs {row.model_b}: no detectable difference ({row.n} samples)"


# --- the build -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RunTables:
    """The whole run's tables; each task's section takes its own rows."""

    comparisons: pd.DataFrame
    robustness: pd.DataFrame
    performance: pd.DataFrame
    worst: pd.DataFrame
    error_kinds: pd.DataFrame
    variants: Variants | None = None  # None: no variants.json, or nothing grouped
    latency: dict[tuple[str, str], settings.Latency] = field(default_factory=dict)


def build_report(
    results_dir: str | Path,
    out_dir: str | Path,
    *,
    baseline_dir: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    workers: int = 2,
) -> Report:
    """Read ``results_dir`` and write the report into ``out_dir``; gaps become warnings."""
    clock = _Stages()
    results = load_results(results_dir)
    clock.done("read results/")
    baseline = load_results(baseline_dir) if baseline_dir is not None else None
    report = Report(out=Path(out_dir), warnings=list(results.warnings))
    variants = _read_variants(results, report)
    _clean_folder(report.out / "figures", (".svg", ".pdf"))
    _clean_folder(report.out / "tables", (".tex",))

    primary = {task: results.primary(task) for task in results.tasks()}
    higher = {task: results.higher_is_better(task, primary[task]) for task in primary}
    pairs = run_pairs(variants, results.overall, primary, higher)
    comparisons = compare_run(results, n_boot=n_boot, seed=seed, pairs=pairs)
    clock.done(f"{len(comparisons)} comparisons")
    run = _RunTables(
        comparisons=comparisons,
        robustness=robustness_table(results),
        performance=performance_table(results),
        worst=worst_samples(results),
        error_kinds=error_kinds(results),
        variants=variants,
        latency=(
            {}
            if variants is None
            else settings.latency_table(results, variants, n_boot=n_boot, seed=seed)
        ),
    )
    specs: list[figures.Spec] = []
    task_sections = []
    for task in results.tasks():
        section = _task_section(results, task, run, specs)
        task_sections.append(section)
        report.files.append(_write_leaderboard_table(report.out, results, task, section))
    perf_sections, perf_warnings = perf.perf_sections(results, specs)
    report.warnings += perf_warnings
    judge_sections, judge_warnings = judges.judge_sections(results, baseline)
    report.warnings += judge_warnings
    mws_section, mws_warnings = mws_vision.mws_vision_section(results, n_boot=n_boot, seed=seed)
    report.warnings += mws_warnings
    clock.done("tables and sections")
    rendered = figures.render_all(specs, workers=workers)
    clock.done(f"{len(rendered)} figures")
    _write_figures(report, rendered, task_sections, perf_sections)
    _write_run_tables(report, results, run)
    _write_perf_tables(report, perf_sections)
    _write_judge_tables(report, judge_sections)
    _write_sweep_tables(report, results, task_sections)
    if mws_section is not None:
        text = tables.mws_vision_table(mws_section)
        report.files.append(_write_text(report.out / "tables" / "mws_vision.tex", text))
    baseline_context = None
    if baseline is not None:
        baseline_context = _baseline_section(report, results, baseline, n_boot=n_boot, seed=seed)
    _write_markdown_leaderboard(report, results, run)
    provenance = _write_provenance(report, results, judge_sections)
    context = _page_context(results, run, task_sections, provenance, baseline_context, report)
    context["perf"] = perf_sections
    context["judges"] = judge_sections
    context["mws_vision"] = mws_section
    report.files.append(_write_text(report.out / "index.html", render_index(context)))
    clock.done("index.html")
    for warning in report.warnings:
        log.warning("%s", warning)
    return report


def _read_variants(results: Results, report: Report) -> Variants | None:
    """``results/variants.json``, when it groups some of the run's models (else ``None``: the
    report is then what it is for a run without variants); its gaps become warnings."""
    variants, warnings = load_variants(results.root)
    report.warnings += warnings
    if variants is None:
        return None
    report.warnings += unlisted(variants, results.models())
    return variants if variants.grouped(results.models()) else None


# --- one task's sections of the page -----------------------------------------------------------


def _task_section(
    results: Results, task: str, run: _RunTables, specs: list[figures.Spec]
) -> dict[str, Any]:
    """One task's part of the page; its figures go into ``specs`` (metrics, groups, pareto,
    severity), to be rendered with every other task's and put in by :func:`_write_figures`."""
    board = _leaderboard(results, task, run.variants)
    primary = board["metrics"][0]
    higher = board["higher"][primary]
    leaderboard = _leaderboard_section(results, task, board, specs)
    sweeps = settings.settings_sections(
        results, task, run.variants, run.comparisons, run.latency, specs
    )
    performance = _performance_section(
        results, task, run.performance, primary, specs, grouped=run.variants is not None
    )
    robustness = _robustness_section(results, task, run.robustness, primary, specs)
    return {
        "name": task,
        "primary": primary,
        "higher": higher,
        **leaderboard,
        "settings": sweeps,
        **_comparisons_section(run.comparisons, task, primary, settings.shown_pairs(sweeps)),
        **robustness,
        **performance,
        **_errors_section(run, task),
    }


def _leaderboard_section(
    results: Results, task: str, board: dict[str, Any], specs: list[figures.Spec]
) -> dict[str, Any]:
    """The leaderboard with its metrics figure, and the per-group tables with theirs."""
    overall = results.overall[results.overall["task"] == task]
    metrics_fig = f"{task}_metrics"
    specs.append(("metrics_figure", (metrics_fig, task, overall, board["metrics"])))
    group_tables, group_rows, group_columns = _groups(results, task)
    groups_fig = f"{task}_groups" if group_columns else None
    if groups_fig:
        specs.append(
            ("groups_figure", (groups_fig, board["metrics"][0], group_rows, group_columns))
        )
    return {
        "leaderboard": board,
        "fig_metrics": metrics_fig,
        "shown_metrics": board["metrics"][: figures.MAX_PANELS],
        "groups": group_tables,
        "fig_groups": groups_fig,
    }


def _comparisons_section(
    comparisons: pd.DataFrame, task: str, primary: str, shown: set[tuple[str, str]]
) -> dict[str, Any]:
    """The pairs compared on the main metric, each with its sentence, but those the Settings
    section phrases (``shown``); counts over all metrics."""
    task_comparisons = comparisons[comparisons["task"] == task]
    main = task_comparisons[task_comparisons["metric"] == primary]
    if shown:
        pairs = pd.Series(
            list(zip(main["model_a"], main["model_b"], strict=True)), index=main.index
        )
        main = main[~pairs.isin(shown)]
    return {
        "comparisons": [
            {**row, "sentence": _sentence(r)}
            for row, r in zip(_records(main), main.itertuples(), strict=True)
        ],
        "n_comparisons": len(task_comparisons),
        "n_significant": int(task_comparisons["significant"].sum()),
    }


def _robustness_section(
    results: Results,
    task: str,
    robustness: pd.DataFrame,
    primary: str,
    specs: list[figures.Spec],
) -> dict[str, Any]:
    """The main metric per distortion subset, and against severity when the task has one."""
    severity = by_severity(results, task)
    severity_fig = f"{task}_severity" if severity else None
    if severity_fig:
        specs.append(("severity_figure", (severity_fig, primary, severity)))
    return {
        "robustness": _records(robustness[robustness["task"] == task]),
        "fig_severity": severity_fig,
    }


def _performance_section(
    results: Results,
    task: str,
    performance: pd.DataFrame,
    primary: str,
    specs: list[figures.Spec],
    grouped: bool = False,
) -> dict[str, Any]:
    """Serving figures per model, and quality against p50 latency with its Pareto front (with
    variants and many points, only the front's points labelled)."""
    overall = results.overall[results.overall["task"] == task]
    higher = results.higher_is_better(task, primary)
    perf = performance[performance["task"] == task]
    points = (
        overall[overall["metric"] == primary][["model", "value"]]
        .merge(perf[["model", "latency_p50_ms"]], on="model", how="inner")
        .sort_values("model")
    )
    pareto_fig = None
    front = []
    if points["latency_p50_ms"].notna().any():
        mask = pareto_front(
            points["value"].to_numpy(dtype=float),
            points["latency_p50_ms"].to_numpy(dtype=float),
            higher,
        )
        pareto_fig = f"{task}_pareto"
        front_only = grouped and len(points) > settings.MAX_LABELLED_POINTS
        specs.append(("pareto_figure", (pareto_fig, primary, points, mask, higher, front_only)))
        front = points["model"][mask].tolist()
    return {"performance": _records(perf), "fig_pareto": pareto_fig, "pareto_front": front}


def _errors_section(run: _RunTables, task: str) -> dict[str, Any]:
    """Failed samples counted by kind, and the worst samples on the main metric."""
    return {
        "worst": _records(run.worst[run.worst["task"] == task]),
        "error_kinds": _records(run.error_kinds[run.error_kinds["task"] == task]),
    }


def _baseline_section(
    report: Report, results: Results, baseline: Results, *, n_boot: int, seed: int
) -> dict[str, Any]:
    """Each (model, task, metric) against the baseline run; writes ``baseline.csv``."""
    changes, notes = compare_baseline(results, baseline, n_boot=n_boot, seed=seed)
    report.files.append(_write_csv(report.out / "baseline.csv", changes))
    report.warnings += [f"baseline {w}" for w in baseline.warnings]
    return {
        "rows": _records(changes),
        "notes": notes,
        "n_regressions": int((changes["verdict"] == "REGRESSION").sum()),
    }


def _page_context(
    results: Results,
    run: _RunTables,
    task_sections: list[dict[str, Any]],
    provenance: dict[str, Any],
    baseline_context: dict[str, Any] | None,
    report: Report,
) -> dict[str, Any]:
    """Everything ``index.html`` shows: the run, the overview, each task, provenance, gaps."""
    comparisons = run.comparisons
    return {
        "run": {
            **provenance["run"],
            "n_models": len(results.models()),
            "n_tasks": len(results.tasks()),
            "n_samples": _n_samples(results),
        },
        "overview": _overview(results, run.variants),
        "variants": run.variants is not None,
        "tasks": task_sections,
        "provenance": provenance_rows(results),
        "baseline": baseline_context,
        "warnings": report.warnings,
        "n_comparisons": len(comparisons),
        "n_significant": int(comparisons["significant"].sum()) if len(comparisons) else 0,
    }


# --- the files beside the page -----------------------------------------------------------------


def _write_leaderboard_table(
    out: Path, results: Results, task: str, section: dict[str, Any]
) -> Path:
    board = section["leaderboard"]
    overall = results.overall[results.overall["task"] == task]
    return _write_text(
        out / "tables" / f"{task}_leaderboard.tex",
        tables.leaderboard_table(task, overall, board["metrics"], board["order"], board["groups"]),
    )


def _write_figures(
    report: Report,
    rendered: list[figures.Rendered],
    task_sections: list[dict[str, Any]],
    perf_sections: list[dict[str, Any]],
) -> None:
    """Each figure as SVG and PDF under ``figures/``, and inline in its section's page part."""
    figures_dir = report.out / "figures"
    uris = {figure.name: svg_data_uri(figure.svg) for figure in rendered}
    for section in task_sections:
        for key in ("fig_metrics", "fig_groups", "fig_severity", "fig_pareto"):
            section[key] = uris.get(section[key]) if section[key] else None
        settings.attach_figures(section["settings"], uris)
    perf.attach_figures(perf_sections, uris)
    for figure in rendered:
        figures.write(figure, figures_dir)
        report.files += [figures_dir / f"{figure.name}.svg", figures_dir / f"{figure.name}.pdf"]


def _write_run_tables(report: Report, results: Results, run: _RunTables) -> None:
    """The comparisons on each task's main metric and robustness as LaTeX; every comparison as
    ``comparisons.csv``."""
    tables_dir = report.out / "tables"
    comparisons = run.comparisons
    main_metric = {task: results.primary(task) for task in results.tasks()}
    main_comparisons = comparisons[comparisons["metric"] == comparisons["task"].map(main_metric)]
    report.files.append(
        _write_text(
            tables_dir / "comparisons.tex",
            tables.comparison_table(
                main_comparisons, "Pairwise differences on each task's main metric"
            ),
        )
    )
    if len(run.robustness):
        report.files.append(
            _write_text(tables_dir / "robustness.tex", tables.robustness_table(run.robustness))
        )
    report.files.append(_write_csv(report.out / "comparisons.csv", comparisons))


def _write_perf_tables(report: Report, perf_sections: list[dict[str, Any]]) -> None:
    """``tables/perf_{task}.tex`` (the goodput table, with perf results) and
    ``tables/cost_{task}.tex`` (cost per 1,000 samples) per task of the perf section."""
    for section in perf_sections:
        task = section["name"]
        if section["goodput"]:
            text = tables.perf_table(task, section["goodput"])
            report.files.append(_write_text(report.out / "tables" / f"perf_{task}.tex", text))
        text = tables.cost_table(task, section["costs"], section["metric"], section["higher"])
        report.files.append(_write_text(report.out / "tables" / f"cost_{task}.tex", text))


def _write_judge_tables(report: Report, judge_sections: list[dict[str, Any]]) -> None:
    """``tables/judges_{metric}.tex`` per judge metric: each judge against the panel per task
    and model, and the agreement between the judges."""
    for section in judge_sections:
        path = report.out / "tables" / f"judges_{slug(section['name'])}.tex"
        report.files.append(_write_text(path, tables.judges_table(section)))


def _write_sweep_tables(
    report: Report, results: Results, task_sections: list[dict[str, Any]]
) -> None:
    """``tables/{task}_sweep_{group}.tex``: each grid of swept variants, a row per variant."""
    for section in task_sections:
        for grid in section["settings"]:
            text = tables.sweep_table(
                section["name"],
                grid["group"],
                grid["axis_names"],
                grid["rows"],
                section["primary"],
                section["higher"],
            )
            path = report.out / "tables" / f"{section['name']}_sweep_{grid['id']}.tex"
            report.files.append(_write_text(path, text))


def _write_markdown_leaderboard(report: Report, results: Results, run: _RunTables) -> None:
    """``leaderboard.md``, with the performance columns it has always had."""
    legacy = run.performance.rename(columns={"tokens_per_s": "tokens_per_s_mean"})
    legacy = legacy[
        ["model", "task", "n", "n_errors", "latency_p50_ms", "latency_p95_ms", "tokens_per_s_mean"]
    ]
    group_of = run.variants.group if run.variants is not None else None
    text = render_leaderboard(results.summary, legacy, group_of)
    report.files.append(_write_text(report.out / "leaderboard.md", text))


def _write_provenance(
    report: Report, results: Results, judge_sections: list[dict[str, Any]]
) -> dict[str, Any]:
    """``provenance.json``; returns the document (the page's run facts come from it). Per
    judge metric and judge: the served model names and system fingerprints it answered with."""
    provenance = provenance_document(results)
    if judge_sections:
        provenance["judges"] = {
            section["name"]: {
                served["judge"]: {
                    "served_models": served["models"],
                    "system_fingerprints": served["fingerprints"],
                }
                for served in section["served"]
            }
            for section in judge_sections
        }
    report.files.append(
        _write_text(
            report.out / "provenance.json",
            json.dumps(provenance, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
        )
    )
    return provenance


def _n_samples(results: Results) -> int:
    overall = results.overall
    per_task = overall.groupby("task")["n_samples"].max()
    return int(per_task.fillna(0).sum())


def _overview(results: Results, variants: Variants | None) -> dict[str, Any]:
    """Models × tasks on each task's main metric; variants by group (by name), as a group head
    row over the group's models."""
    tasks = results.tasks()
    columns = []
    for task in tasks:
        primary = results.primary(task)
        higher = results.higher_is_better(task, primary)
        rows = results.overall[
            (results.overall["task"] == task) & (results.overall["metric"] == primary)
        ]
        values = rows["value"].dropna().round(3)
        best = None if values.empty else (values.max() if higher else values.min())
        columns.append(
            {"task": task, "metric": primary, "higher": higher, "best": best, "rows": rows}
        )
    models = results.models()
    if variants is not None:
        models = [m for _, members in name_order(models, variants.group) for m in members]
    body = []
    for model in models:
        cells = []
        for column in columns:
            match = column["rows"][column["rows"]["model"] == model]
            if match.empty or pd.isna(match["value"].iloc[0]):
                cells.append(None)
                continue
            value = float(match["value"].iloc[0])
            cells.append(
                {
                    "value": value,
                    "ci_low": match["ci_low"].iloc[0],
                    "ci_high": match["ci_high"].iloc[0],
                    "best": round(value, 3) == column["best"],
                }
            )
        body.append({"model": model, "cells": cells, "group_head": None, "in_group": False})
    return {
        "columns": [{k: c[k] for k in ("task", "metric", "higher")} for c in columns],
        "rows": body if variants is None else grouped_rows(body, variants.group),
    }
