"""A task's Settings section: per group with swept variants, what each swept setting does.

For each grid of swept variants (:func:`~vlmhyperbench.reporting.variants.sweep_grids`): the
task's main metric (summary value and CI) and the p50 per-request latency (from the predictions,
as the performance section reads it; 95% CI from a bootstrap of the requests) against each swept
setting's values — a figure (a line per combination of the other swept settings) and a table —
the whole grid as a table (also LaTeX), the best variant, the Pareto front over the grid's
variants, and the sentences of the paired comparisons between them (the pairs and their
statistics come from :mod:`~vlmhyperbench.reporting.compare`, Holm over the task's family).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pandas as pd

from vlmhyperbench.reporting import figures
from vlmhyperbench.reporting.results import Results
from vlmhyperbench.reporting.serving import pareto_front
from vlmhyperbench.reporting.variants import (
    Grid,
    Variants,
    axis_names,
    describe_pair,
    ranked_models,
    slug,
    sweep_grids,
)
from vlmhyperbench.stats.resampling import bootstrap_statistic

Latency = tuple[float, float, float]  # p50, 95% CI low, high (ms)
NO_LATENCY: Latency = (math.nan, math.nan, math.nan)
MAX_LATENCY_BOOT = 1000
MAX_LABELLED_POINTS = 12  # a Pareto figure with more points labels its front only


def latency_p50(latency_ms: np.ndarray, n_boot: int, seed: int) -> Latency:
    """The median request latency with a percentile-bootstrap 95% CI over the requests."""
    values = latency_ms[~np.isnan(latency_ms)]
    if not values.size:
        return NO_LATENCY
    p50 = float(np.percentile(values, 50))
    if values.size < 2 or n_boot < 2:
        return p50, math.nan, math.nan
    rng = np.random.default_rng(seed)
    medians = bootstrap_statistic(values, lambda drawn: np.median(drawn, axis=1), n_boot, rng)
    low, high = np.quantile(medians, [0.025, 0.975])
    return p50, float(low), float(high)


def latency_table(
    results: Results, variants: Variants, *, n_boot: int, seed: int
) -> dict[tuple[str, str], Latency]:
    """(model, task) → p50 latency with CI, for every swept variant with predictions."""
    out = {}
    for (model, task), frame in sorted(results.predictions.items()):
        if not variants.swept(model):
            continue
        ok = frame.loc[frame["error"].isna(), "latency_ms"].to_numpy(dtype=float)
        salt = zlib.crc32(f"{model}\0{task}".encode())
        out[(model, task)] = latency_p50(ok, min(n_boot, MAX_LATENCY_BOOT), seed * 7919 + salt)
    return out


def _num(value: float) -> str:
    """Three decimals, without a minus sign on a rounded zero; a dash for NaN."""
    return "—" if value != value else f"{round(value, 3) + 0.0:.3f}"


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def variant_sentence(row: Any, left: str, right: str, context: str, ratio: float) -> str:
    """``psm 4 beats psm 6 (languages rus) by 0.120 cer [0.080, 0.160], p < 0.001, 0.6× the
    latency``: the gain in the metric's better direction with its CI, Holm-adjusted p."""
    sign = 1.0 if row.higher_is_better else -1.0
    low, high = sorted((sign * row.ci_low, sign * row.ci_high))
    gain, low, high = _num(sign * row.diff), _num(low), _num(high)
    where = f" ({context})" if context else ""
    latency = f", {ratio:.1f}× the latency" if ratio == ratio else ""
    amount = f"{gain} {row.metric} [{low}, {high}]"
    if row.significant:
        return f"{left} beats {right}{where} by {amount}, {_p_text(row.p_holm)}{latency}"
    return (
        f"{left} vs {right}{where}: no significant difference ({amount}, "
        f"{_p_text(row.p_holm)}){latency}"
    )


def _cell(model: str, overall: pd.DataFrame, latency: Latency, labels: list[str]) -> dict:
    match = overall[overall["model"] == model]
    value, low, high = (
        (math.nan,) * 3
        if match.empty
        else tuple(float(match[c].iloc[0]) for c in ("value", "ci_low", "ci_high"))
    )
    return {
        "model": model,
        "labels": labels,
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "latency": latency[0],
        "latency_low": latency[1],
        "latency_high": latency[2],
        "best": False,
        "front": False,
    }


def _axis(grid: Grid, k: int, names: dict[str, str], cells: dict[str, dict]) -> dict[str, Any]:
    """One swept setting: a row per value, a column per combination of the other settings."""
    paths = list(grid.axes)
    others = paths[:k] + paths[k + 1 :]
    series = list(dict.fromkeys(labels[:k] + labels[k + 1 :] for labels in grid.members.values()))
    where = {labels: model for model, labels in grid.members.items()}
    rows = []
    for value in grid.axes[paths[k]]:
        row_cells = []
        for rest in series:
            model = where.get((*rest[:k], value, *rest[k:]))
            row_cells.append(cells[model] if model is not None else None)
        rows.append({"value": value, "cells": row_cells})
    return {
        "path": paths[k],
        "name": names[paths[k]],
        "others": [names[p] for p in others],
        "values": grid.axes[paths[k]],
        "series": [
            ", ".join(f"{names[p]} {v}" for p, v in zip(others, rest, strict=True))
            for rest in series
        ],
        "rows": rows,
    }


def _figure_data(axis: dict[str, Any], key: str) -> list[list[tuple[float, float, float]]]:
    """Per series, per value: (y, low, high) of ``key`` (value or latency), NaN where missing."""
    low, high = ("ci_low", "ci_high") if key == "value" else ("latency_low", "latency_high")
    return [
        [
            (math.nan,) * 3
            if row["cells"][s] is None
            else (row["cells"][s][key], row["cells"][s][low], row["cells"][s][high])
            for row in axis["rows"]
        ]
        for s in range(len(axis["series"]))
    ]


def _pareto(cells: list[dict], metric: str, higher: bool, name: str, specs: list) -> list[str]:
    """Marks the Pareto front over the grid's variants; its figure goes into ``specs``."""
    points = pd.DataFrame(
        {
            "model": [", ".join(c["labels"]) for c in cells],  # the values, in axis order
            "value": [c["value"] for c in cells],
            "latency_p50_ms": [c["latency"] for c in cells],
        }
    )
    if not points["latency_p50_ms"].notna().any():
        return []
    mask = pareto_front(
        points["value"].to_numpy(dtype=float), points["latency_p50_ms"].to_numpy(), higher
    )
    for cell, on_front in zip(cells, mask, strict=True):
        cell["front"] = bool(on_front)
    front_only = len(points) > MAX_LABELLED_POINTS
    specs.append(("pareto_figure", (name, metric, points, mask, higher, front_only)))
    return [c["text"] for c in cells if c["front"]]


def _sentences(
    comparisons: pd.DataFrame,
    grid: Grid,
    variants: Variants,
    names: dict[str, str],
    cells: dict[str, dict],
) -> list[dict[str, Any]]:
    """The grid's pairs on the main metric, significant first (then by p), as sentences."""
    rows = comparisons[
        comparisons["model_a"].isin(grid.members) & comparisons["model_b"].isin(grid.members)
    ]
    rows = rows.assign(_ns=~rows["significant"].astype(bool)).sort_values(
        ["_ns", "p_holm", "model_a", "model_b"], kind="stable"
    )
    out = []
    for row in rows.itertuples():
        left, right, context = describe_pair(variants, row.model_a, row.model_b, names)
        a, b = cells[row.model_a]["latency"], cells[row.model_b]["latency"]
        ratio = a / b if b == b and a == a and b > 0 else math.nan
        out.append(
            {
                "text": variant_sentence(row, left, right, context, ratio),
                "significant": bool(row.significant),
                "pair": (row.model_a, row.model_b),
            }
        )
    return out


def _grid_section(
    results: Results,
    task: str,
    grid: Grid,
    grid_id: str,
    context: dict[str, Any],
    specs: list[figures.Spec],
) -> dict[str, Any]:
    """One grid's part of the Settings section (figures into ``specs``, by name)."""
    primary = results.primary(task)
    higher = results.higher_is_better(task, primary)
    overall = results.overall[
        (results.overall["task"] == task) & (results.overall["metric"] == primary)
    ]
    names = axis_names(grid.axes)
    cells = {
        model: _cell(model, overall, context["latency"].get((model, task), NO_LATENCY), list(lab))
        for model, lab in grid.members.items()
    }
    for model, cell in cells.items():
        cell["text"] = ", ".join(
            f"{names[p]} {v}" for p, v in zip(grid.axes, grid.members[model], strict=True)
        )
    ranked = ranked_models(overall[overall["model"].isin(grid.members)], primary, higher)
    best = cells[ranked[0]] if ranked and ranked[0] in cells else None
    if best is not None and best["value"] == best["value"]:
        best["best"] = True
    axes = [_axis(grid, k, names, cells) for k in range(len(grid.axes))]
    for axis in axes:
        axis["fig"] = f"{task}_settings_{grid_id}_{slug(axis['name'])}"
        specs.append(
            (
                "settings_figure",
                (
                    axis["fig"],
                    primary,
                    higher,
                    axis["name"],
                    axis["values"],
                    axis["series"],
                    _figure_data(axis, "value"),
                    _figure_data(axis, "latency"),
                ),
            )
        )
    pareto_fig = f"{task}_settings_{grid_id}_pareto"
    front = _pareto(list(cells.values()), primary, higher, pareto_fig, specs)
    task_rows = context["comparisons"]
    main = task_rows[(task_rows["task"] == task) & (task_rows["metric"] == primary)]
    sentences = _sentences(main, grid, variants=context["variants"], names=names, cells=cells)
    return {
        "id": grid_id,
        "group": grid.group,
        "axes": axes,
        "axis_names": [names[p] for p in grid.axes],
        "rows": list(cells.values()),
        "best": best,
        "fig_pareto": pareto_fig if front else None,
        "front": front,
        "sentences": sentences,
        "n_significant": sum(s["significant"] for s in sentences),
    }


def settings_sections(
    results: Results,
    task: str,
    variants: Variants | None,
    comparisons: pd.DataFrame,
    latency: dict[tuple[str, str], Latency],
    specs: list[figures.Spec],
) -> list[dict[str, Any]]:
    """A task's Settings sections, one per grid of swept variants (none without variants)."""
    if variants is None:
        return []
    models = results.overall.loc[results.overall["task"] == task, "model"].unique()
    grids = sweep_grids(variants, task, models)
    groups = [g.group for g in grids]
    context = {"variants": variants, "comparisons": comparisons, "latency": latency}
    sections = []
    for k, grid in enumerate(grids):
        grid_id = slug(grid.group) + (f"-{k}" if groups.count(grid.group) > 1 else "")
        sections.append(_grid_section(results, task, grid, grid_id, context, specs))
    return sections


def shown_pairs(sections: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The pairs the Settings sections already phrase (the comparisons list leaves them out)."""
    return {s["pair"] for section in sections for s in section["sentences"]}


def attach_figures(sections: list[dict[str, Any]], uris: dict[str, str]) -> None:
    """Replace the figure names of the sections with their rendered ``data:`` URIs."""
    for section in sections:
        for axis in section["axes"]:
            axis["fig"] = uris.get(axis["fig"])
        if section["fig_pareto"]:
            section["fig_pareto"] = uris.get(section["fig_pareto"])
