"""Report figures (matplotlib, Agg): SVG + PDF files sized for a paper column, byte-stable.

Stable bytes: a fixed ``svg.hashsalt`` (ids), no dates in SVG or PDF metadata, glyphs as paths
(DejaVu Sans, shipped with matplotlib, renders Cyrillic), and every input sorted by the callers.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper
STYLE = {
    "svg.hashsalt": "vlmhyperbench",
    "svg.fonttype": "none",
    "pdf.fonttype": 3,
    "font.family": "DejaVu Sans",
    "font.size": 7,
    "axes.titlesize": 7,
    "axes.labelsize": 7,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": True,
}
SVG_METADATA = {"Date": None, "Creator": "VLMHyperBench"}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Creator": "VLMHyperBench", "Producer": None}
MAX_PANELS = 6  # a task's metric figure shows its first metrics; the tables have all


Spec = tuple[str, tuple[Any, ...]]  # (function name in this module, its arguments)


@dataclass(frozen=True)
class Rendered:
    name: str
    svg: bytes
    pdf: bytes


@contextmanager
def _style() -> Iterator[None]:
    with plt.rc_context(STYLE):
        yield


def _render(name: str, fig: Figure) -> Rendered:
    svg, pdf = io.BytesIO(), io.BytesIO()
    fig.savefig(svg, format="svg", metadata=SVG_METADATA)
    fig.savefig(pdf, format="pdf", metadata=PDF_METADATA)
    plt.close(fig)
    return Rendered(name, svg.getvalue(), pdf.getvalue())


def _render_spec(spec: Spec) -> Rendered | None:
    name, args = spec
    return globals()[name](*args)


def render_all(specs: list[Spec], workers: int = 2) -> list[Rendered]:
    """Render every figure, in ``workers`` processes when there are enough figures to pay for
    them; the order (and the bytes) do not depend on the number of workers."""
    if workers <= 1 or len(specs) < 8:
        out = [_render_spec(spec) for spec in specs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            out = list(pool.map(_render_spec, specs, chunksize=4))
    return [r for r in out if r is not None]


def _margins(
    fig: Figure, labels: list[str], *, bottom_in: float = 0.35, top_in: float = 0.25
) -> None:
    """Fixed margins from the longest y label (no tight_layout: it costs a whole extra draw)."""
    width, height = fig.get_size_inches()
    left_in = 0.15 + 0.045 * max((len(label) for label in labels), default=4)
    fig.subplots_adjust(
        left=min(0.5, left_in / width),
        right=0.97,
        bottom=min(0.4, bottom_in / height),
        top=1.0 - min(0.3, top_in / height),
    )


def write(rendered: Rendered, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{rendered.name}.svg").write_bytes(rendered.svg)
    (folder / f"{rendered.name}.pdf").write_bytes(rendered.pdf)


def _label(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dot_ci(ax, frame: pd.DataFrame, title: str) -> None:
    """Models on y (in the given order, first at the top), value with its CI as an error bar."""
    y = np.arange(len(frame))[::-1]
    values = frame["value"].to_numpy(dtype=float)
    low = values - frame["ci_low"].to_numpy(dtype=float)
    high = frame["ci_high"].to_numpy(dtype=float) - values
    err = np.nan_to_num(np.vstack([low, high]), nan=0.0).clip(min=0.0)
    ax.errorbar(values, y, xerr=err, fmt="o", markersize=2.5, capsize=1.5, color="#1f5fa8", lw=0.7)
    ax.set_title(_label(title, 40), pad=2)
    ax.grid(axis="x", lw=0.3, alpha=0.5)


def metrics_figure(name: str, task: str, overall: pd.DataFrame, metrics: list[str]) -> Rendered:
    """Each metric of a task (first ``MAX_PANELS``) by model with 95% CI bars; panels share the
    model axis, labelled once per row."""
    shown = metrics[:MAX_PANELS]
    models = sorted(overall["model"].unique())
    labels = [_label(m) for m in models]
    columns = min(2, len(shown))
    rows = math.ceil(len(shown) / columns)
    with _style():
        height = 0.3 + rows * (0.3 + 0.11 * len(models))
        fig, axes = plt.subplots(
            rows, columns, figsize=(COLUMN_WIDTH_IN, height), sharey=True, squeeze=False
        )
        flat = axes.ravel()
        for ax, metric in zip(flat, shown, strict=False):
            frame = overall[overall["metric"] == metric].set_index("model").reindex(models)
            arrow = "↑" if bool(frame["higher_is_better"].dropna().all()) else "↓"
            _dot_ci(ax, frame.reset_index(), f"{metric} {arrow}")
        y = np.arange(len(models))[::-1]
        for ax in axes[:, 0]:
            ax.set_yticks(y, labels)
            ax.set_ylim(-0.6, len(models) - 0.4)  # whole markers at the first and last model
        for ax in flat[len(shown) :]:
            ax.set_visible(False)
        _margins(fig, labels, bottom_in=0.2, top_in=0.2)
        fig.subplots_adjust(hspace=min(0.6, 0.35 / (0.3 + 0.11 * len(models))) * 2, wspace=0.08)
        return _render(name, fig)


def groups_figure(
    name: str, metric: str, groups: pd.DataFrame, columns: list[str]
) -> Rendered | None:
    """Small multiples: the main metric per group (one panel per grouping), a line per model."""
    if not columns:
        return None
    models = sorted(groups["model"].unique())
    with _style():
        fig, axes = plt.subplots(
            len(columns), 1, figsize=(COLUMN_WIDTH_IN, 0.2 + 1.45 * len(columns)), squeeze=False
        )
        for ax, column in zip(axes[:, 0], columns, strict=True):
            part = groups[groups["group_by"] == column]
            labels = sorted(part["group"].unique())[:30]
            x = np.arange(len(labels))
            for k, model in enumerate(models):
                mine = part[part["model"] == model].set_index("group")["value"].reindex(labels)
                ax.plot(x, mine.to_numpy(dtype=float), marker="o", ms=2, lw=0.7, label=model,
                        color=plt.cm.tab20(k % 20))  # fmt: skip
            ax.set_xticks(x, [_label(s, 14) for s in labels], rotation=45, ha="right")
            ax.set_ylabel(_label(f"{metric} by {column}", 30))
            ax.grid(axis="y", lw=0.3, alpha=0.5)
        if len(models) <= 12:
            axes[0, 0].legend(loc="best", frameon=False, ncol=2)
        fig.subplots_adjust(left=0.16, right=0.97, top=0.97, bottom=0.12, hspace=0.75)
        return _render(name, fig)


def severity_figure(name: str, metric: str, series: dict[str, dict[float, float]]) -> Rendered:
    """The main metric against distortion severity, one line per model."""
    with _style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.0))
        for k, model in enumerate(sorted(series)):
            points = sorted(series[model].items())
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, lw=0.8,
                    label=_label(model), color=plt.cm.tab20(k % 20))  # fmt: skip
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel(metric)
        ax.grid(lw=0.3, alpha=0.5)
        if len(series) <= 12:
            ax.legend(frameon=False, fontsize=5)
        fig.subplots_adjust(left=0.15, right=0.97, top=0.95, bottom=0.2)
        return _render(name, fig)


def pareto_figure(
    name: str,
    metric: str,
    points: pd.DataFrame,
    front: np.ndarray,
    higher: bool,
    front_labels_only: bool = False,
) -> Rendered:
    """Quality (main metric) against p50 latency, one point per model (``points["model"]``
    labels it: a model, or a variant's settings), the Pareto front joined; with
    ``front_labels_only`` (many points) only the front's points are labelled."""
    with _style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.2))
        x = points["latency_p50_ms"].to_numpy(dtype=float)
        y = points["value"].to_numpy(dtype=float)
        ax.scatter(x[~front], y[~front], s=10, color="#999999", label="dominated")
        ax.scatter(x[front], y[front], s=14, color="#c0392b", label="Pareto front")
        order = np.argsort(x[front], kind="stable")
        ax.plot(x[front][order], y[front][order], color="#c0392b", lw=0.7)
        for xi, yi, model, on_front in zip(x, y, points["model"], front, strict=True):
            if xi == xi and yi == yi and (on_front or not front_labels_only):
                ax.annotate(_label(model, 18), (xi, yi), fontsize=5, xytext=(2, 2),
                            textcoords="offset points")  # fmt: skip
        ax.margins(x=0.2, y=0.15)  # room for the labels of the outermost points
        ax.set_xlabel("latency p50, ms")
        ax.set_ylabel(f"{metric} {'↑' if higher else '↓'}")
        ax.grid(lw=0.3, alpha=0.5)
        ax.legend(frameon=False)
        fig.subplots_adjust(left=0.15, right=0.97, top=0.95, bottom=0.18)
        return _render(name, fig)


def settings_figure(
    name: str,
    metric: str,
    higher: bool,
    axis: str,
    values: list[str],
    series: list[str],
    quality: list[list[tuple[float, float, float]]],
    latency: list[list[tuple[float, float, float]]],
) -> Rendered:
    """The main metric (top) and p50 latency (bottom) against one swept setting's values (in
    the config's order), a line per combination of the other swept settings (``series``),
    each point with its 95% CI bar; the lines are spread a little sideways to keep bars apart."""
    x = np.arange(len(values), dtype=float)
    spread = min(0.3, 0.08 * (len(series) - 1))
    with _style():
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(COLUMN_WIDTH_IN, 3.0), sharex=True)
        for k, label in enumerate(series):
            offset = spread * (k / (len(series) - 1) - 0.5) if len(series) > 1 else 0.0
            color = plt.cm.tab10(k % 10) if len(series) <= 10 else plt.cm.viridis(k / len(series))
            for ax, data in ((top, quality[k]), (bottom, latency[k])):
                y, low, high = np.array(data, dtype=float).reshape(-1, 3).T
                err = np.nan_to_num(np.vstack([y - low, high - y]), nan=0.0).clip(min=0.0)
                ax.errorbar(
                    x + offset,
                    y,
                    yerr=err,
                    fmt="-o",
                    ms=2.5,
                    lw=0.8,
                    capsize=1.5,
                    color=color,
                    label=_label(label, 30) if label else None,
                )
        top.set_ylabel(_label(f"{metric} {'↑' if higher else '↓'}", 24))
        bottom.set_ylabel("latency p50, ms")
        rotate = 45 if sum(map(len, values)) + 2 * len(values) > 40 else 0
        bottom.set_xticks(
            x, [_label(v, 14) for v in values], rotation=rotate, ha="right" if rotate else "center"
        )
        bottom.set_xlabel(_label(axis, 40))
        bottom.set_xlim(-0.5, len(values) - 0.5)
        for ax in (top, bottom):
            ax.grid(axis="y", lw=0.3, alpha=0.5)
        if series and series[0] and len(series) <= 12:
            top.legend(loc="best", frameon=False, fontsize=5, ncol=2 if len(series) > 4 else 1)
        fig.subplots_adjust(
            left=0.17, right=0.97, top=0.97, bottom=0.2 if rotate else 0.14, hspace=0.12
        )
        return _render(name, fig)


_LADDER_MARKERS = {"concurrency": "o", "rate": "s"}


def _latency_panel(ax, curves: list[dict[str, Any]], figure: str, colors: dict[str, Any]) -> None:
    """One latency figure (``e2e``, ``ttft``) against requests/s: per curve its p50 (solid) and
    p95 (dashed), points that met the SLO filled, the others hollow."""
    for curve in curves:
        color = colors[curve["model"]]
        points = curve["points"]
        x = np.array([p["requests_per_s"] for p in points], dtype=float)
        met = np.array([p["meets_slo"] for p in points], dtype=bool)
        marker = _LADDER_MARKERS.get(curve["ladder"], "o")
        for percentile, style in ((50, "-"), (95, "--")):
            y = np.array([p[f"{figure}_p{percentile}_ms"] for p in points], dtype=float)
            ax.plot(x, y, style, color=color, lw=0.8)
            ax.scatter(x[met], y[met], s=9, marker=marker, color=color, zorder=3)
            ax.scatter(x[~met], y[~met], s=9, marker=marker, facecolors="white",
                       edgecolors=color, linewidths=0.6, zorder=3)  # fmt: skip
    values = [p[f"{figure}_p{q}_ms"] for c in curves for p in c["points"] for q in (50, 95)]
    finite = [v for v in values if v == v and v > 0]
    if finite and max(finite) > 50 * min(finite):
        ax.set_yscale("log")
    ax.grid(lw=0.3, alpha=0.5)


def _perf_legend(ax, colors: dict[str, Any], kinds: list[str]) -> None:
    """A line per model (the first 12), the p50/p95 styles, the SLO mark and, with both
    ladders, their markers."""
    grey = "#555555"
    handles = [Line2D([], [], color=c, lw=0.8, label=_label(m, 40)) for m, c in colors.items()]
    del handles[12:]
    handles.append(Line2D([], [], color=grey, ls="-", lw=0.8, label="p50"))
    handles.append(Line2D([], [], color=grey, ls="--", lw=0.8, label="p95"))
    handles.append(Line2D([], [], color=grey, ls="", marker="o", ms=3, label="met the SLO"))
    for kind in kinds if len(kinds) > 1 else []:
        marker = _LADDER_MARKERS.get(kind, "o")
        handles.append(
            Line2D([], [], color=grey, ls="", marker=marker, ms=3, mfc="white", label=kind)
        )
    ax.legend(handles=handles, frameon=False, fontsize=5, ncol=2, loc="best")


def perf_figure(name: str, curves: list[dict[str, Any]], hardware: list[str]) -> Rendered:
    """Serving performance: e2e latency (top) and TTFT (bottom) in ms against requests/s, a
    colour per model, a line per ladder (○ concurrency, □ rate); p50 solid, p95 dashed; points
    that met the SLO filled. ``hardware``: the machines the curves came from (a footnote)."""
    models = sorted({c["model"] for c in curves})
    colors = {m: plt.cm.tab10(k % 10) for k, m in enumerate(models)}
    with _style():
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(COLUMN_WIDTH_IN, 3.4), sharex=True)
        _latency_panel(top, curves, "e2e", colors)
        _latency_panel(bottom, curves, "ttft", colors)
        top.set_ylabel("e2e latency, ms")
        bottom.set_ylabel("TTFT, ms")
        bottom.set_xlabel("throughput, requests/s")
        _perf_legend(top, colors, sorted({c["ladder"] for c in curves}))
        note = "; ".join(_label(label, 48) for label in hardware[:3])
        fig.text(0.01, 0.005, _label(f"hardware: {note}", 90), fontsize=5, color="#555555")
        fig.subplots_adjust(left=0.16, right=0.97, top=0.97, bottom=0.14, hspace=0.1)
        return _render(name, fig)


def cost_pareto_figure(
    name: str, metric: str, higher: bool, points: list[dict[str, Any]], left_out: int
) -> Rendered:
    """Quality (main metric, 95% CI bars) against cost per 1,000 samples (USD), a point per
    model with a cost, the Pareto front joined; ``left_out`` models without a cost noted."""
    x = np.array([p["usd_per_1k_samples"] for p in points], dtype=float)
    y = np.array([p["value"] for p in points], dtype=float)
    low = np.array([p["ci_low"] for p in points], dtype=float)
    high = np.array([p["ci_high"] for p in points], dtype=float)
    front = np.array([p["front"] for p in points], dtype=bool)
    err = np.nan_to_num(np.vstack([y - low, high - y]), nan=0.0).clip(min=0.0)
    with _style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, 2.3))
        for mask, color, label in ((~front, "#999999", "dominated"),
                                   (front, "#c0392b", "Pareto front")):  # fmt: skip
            if mask.any():
                ax.errorbar(x[mask], y[mask], yerr=err[:, mask], fmt="o", ms=3, capsize=1.5,
                            lw=0.7, color=color, label=label)  # fmt: skip
        order = np.argsort(x[front], kind="stable")
        ax.plot(x[front][order], y[front][order], color="#c0392b", lw=0.7)
        for xi, yi, point in zip(x, y, points, strict=True):
            ax.annotate(_label(point["model"], 18), (xi, yi), fontsize=5, xytext=(2, 2),
                        textcoords="offset points")  # fmt: skip
        positive = x[x > 0]
        if positive.size and positive.max() > 100 * positive.min() and positive.size == x.size:
            ax.set_xscale("log")
        ax.margins(x=0.2, y=0.15)
        ax.set_xlabel("cost per 1,000 samples, USD")
        ax.set_ylabel(_label(f"{metric} {'↑' if higher else '↓'}", 30))
        ax.grid(lw=0.3, alpha=0.5)
        ax.legend(frameon=False)
        if left_out:
            fig.text(0.01, 0.005, f"{left_out} model(s) without a cost left out",
                     fontsize=5, color="#555555")  # fmt: skip
        fig.subplots_adjust(left=0.15, right=0.97, top=0.95, bottom=0.2)
        return _render(name, fig)
