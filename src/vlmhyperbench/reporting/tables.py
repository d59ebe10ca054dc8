r"""LaTeX tables for papers (booktabs ``tabular`` bodies to ``\input``).

A value with its 95% CI reads ``0.842 {\scriptsize[0.80, 0.88]}``; the best value per column is
bold (by the metric's direction, on the displayed digits). Text is escaped for LaTeX and is
Cyrillic-safe with ``\usepackage[T2A]{fontenc}`` and ``\usepackage[russian,english]{babel}``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from vlmhyperbench.reporting.variants import label

DIGITS = 3
PREAMBLE = (
    "% Needs \\usepackage{booktabs}; for Cyrillic text also \\usepackage[T2A]{fontenc},\n"
    "% \\usepackage[utf8]{inputenc} and \\usepackage[russian,english]{babel}.\n"
)
_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "…": r"\ldots{}",
    "—": "---",
    "–": "--",
    "×": r"$\times$",
    "÷": r"$\div$",
    "≤": r"$\leq$",
    "≥": r"$\geq$",
}


def escape(text: Any) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: Any, digits: int = DIGITS) -> str:
    return "--" if _missing(value) else f"{float(value):.{digits}f}"


def with_ci(value: Any, low: Any, high: Any, bold: bool = False) -> str:
    text = number(value)
    if bold and text != "--":
        text = rf"\textbf{{{text}}}"
    if not _missing(low) and not _missing(high) and text != "--":
        text += rf" {{\scriptsize[{float(low):.2f}, {float(high):.2f}]}}"
    return text


def p_value(p: Any) -> str:
    if _missing(p):
        return "--"
    return r"$<$0.001" if p < 0.001 else f"{p:.3f}"


def _arrow(higher: bool) -> str:
    return r"$\uparrow$" if higher else r"$\downarrow$"


def _tabular(columns: str, header: list[str], rows: list[list[str]], caption: str) -> str:
    lines = [
        PREAMBLE + f"% {escape(caption)}",
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *[" & ".join(row) + r" \\" for row in rows],
        r"\bottomrule",
        r"\end{tabular}",
    ]
    return "\n".join(lines) + "\n"


def _best(values: pd.Series, higher: bool) -> float | None:
    shown = [round(float(v), DIGITS) for v in values if not _missing(v)]
    if not shown:
        return None
    return max(shown) if higher else min(shown)


def _grouped(
    models: list[str], groups: list[tuple[str, list[str]]] | None, width: int
) -> list[tuple[str, str | None]]:
    """(model, its first cell) in table order; a group header row is (group, None). A group of
    several models is a header (the group in italics) over its members, indented and named
    by what sets them apart (``psm=6`` under ``tess``)."""
    if groups is None:
        return [(model, escape(model)) for model in models]
    out: list[tuple[str, str | None]] = []
    for group, members in groups:
        if len(members) == 1:
            out.append((members[0], escape(members[0])))
            continue
        out.append((rf"\multicolumn{{{width}}}{{l}}{{\textit{{{escape(group)}}}}}", None))
        for model in members:
            out.append((model, rf"\quad {escape(label(model, group))}"))
    return out


def leaderboard_table(
    task: str,
    overall: pd.DataFrame,
    metrics: list[str],
    models: list[str],
    groups: list[tuple[str, list[str]]] | None = None,
) -> str:
    """Models (rows, in the given order) × metrics with CIs and n; best per column in bold.
    With ``groups`` ((group, members) in order), variants sit under their group's name."""
    entries = {(r.model, r.metric): r for r in overall.itertuples()}
    higher = {
        m: bool(overall.loc[overall["metric"] == m, "higher_is_better"].iloc[0]) for m in metrics
    }
    best = {m: _best(overall.loc[overall["metric"] == m, "value"], higher[m]) for m in metrics}
    rows = []
    for model, first in _grouped(models, groups, len(metrics) + 2):
        if first is None:
            rows.append([model])
            continue
        cells = [first]
        n = 0
        for metric in metrics:
            entry = entries.get((model, metric))
            if entry is None:
                cells.append("--")
                continue
            n = max(n, int(entry.n_samples) if not _missing(entry.n_samples) else 0)
            bold = (
                best[metric] is not None
                and not _missing(entry.value)
                and round(float(entry.value), DIGITS) == best[metric]
            )
            cells.append(with_ci(entry.value, entry.ci_low, entry.ci_high, bold))
        rows.append([*cells, str(n)])
    header = ["Model", *[f"{escape(m)} {_arrow(higher[m])}" for m in metrics], "$n$"]
    return _tabular("l" + "r" * (len(metrics) + 1), header, rows, f"Leaderboard: {task}")


def comparison_table(comparisons: pd.DataFrame, caption: str) -> str:
    """Pairwise differences (A − B) with CIs, p-values (raw and Holm) and the MDD."""
    rows = [
        [
            escape(r.task),
            escape(r.metric),
            escape(r.model_a),
            escape(r.model_b),
            with_ci(r.diff, r.ci_low, r.ci_high, bold=bool(r.significant)),
            p_value(r.p_value),
            p_value(r.p_holm),
            number(r.mdd),
            str(int(r.n)),
        ]
        for r in comparisons.itertuples()
    ]
    header = ["Task", "Metric", "A", "B", "A $-$ B", "$p$", "$p_{\\mathrm{Holm}}$", "MDD", "$n$"]
    return _tabular("llllrrrrr", header, rows, caption)


def robustness_table(robustness: pd.DataFrame) -> str:
    """Main metric per subset with CI, rPC and flip rate, per task and model."""
    rows = [
        [
            escape(r.task),
            escape(r.model),
            escape(r.subset),
            with_ci(r.value, r.ci_low, r.ci_high),
            number(r.rpc, 2),
            "--" if _missing(r.flip_rate) else f"{100 * r.flip_rate:.1f}\\%",
        ]
        for r in robustness.itertuples()
    ]
    header = ["Task", "Model", "Subset", "Main metric", "rPC", "Flip rate"]
    return _tabular("lllrrr", header, rows, "Robustness by distortion subset")


def sweep_table(
    task: str, group: str, axes: list[str], rows: list[dict[str, Any]], metric: str, higher: bool
) -> str:
    """One grid of swept variants: a row per variant, a column per swept setting, the main
    metric with its CI (best in bold) and the p50 latency in ms with its CI."""
    best = _best(pd.Series([r["value"] for r in rows], dtype=float), higher)
    body = []
    for r in rows:
        bold = best is not None and not _missing(r["value"]) and round(r["value"], DIGITS) == best
        latency = "--" if _missing(r["latency"]) else f"{r['latency']:.0f}"
        if latency != "--" and not _missing(r["latency_low"]):
            latency += rf" {{\scriptsize[{r['latency_low']:.0f}, {r['latency_high']:.0f}]}}"
        body.append(
            [
                *[escape(label) for label in r["labels"]],
                with_ci(r["value"], r["ci_low"], r["ci_high"], bold),
                latency,
            ]
        )
    header = [*[escape(a) for a in axes], f"{escape(metric)} {_arrow(higher)}", "p50 latency, ms"]
    caption = f"Sweep of {group} on {task}"
    return _tabular("l" * len(axes) + "rr", header, body, caption)


def perf_table(task: str, rows: list[dict[str, Any]]) -> str:
    """The goodput table of a task's perf results: per model and ladder the highest load that
    met the SLO, its requests/s and goodput, TTFT/TPOT/e2e at the SLO's percentile there (ms),
    the SLO, the search's reason and the hardware."""
    body = [
        [
            escape(r["model"]),
            escape(r["ladder"]),
            escape(r["best_text"]),
            number(r["requests_per_s"], 2),
            number(r["goodput"], 2),
            *[number(r[key], 0) for key in ("ttft_ms", "tpot_ms", "e2e_ms")],
            escape(r["slo"]),
            escape(r["reason"].replace("_", " ")),
            escape(r["hardware"]),
        ]
        for r in rows
    ]
    header = [
        "Model", "Ladder", "Best load", "req/s", "Goodput", "TTFT, ms", "TPOT, ms", "e2e, ms",
        "SLO", "Stop", "Hardware",
    ]  # fmt: skip
    caption = f"Serving performance at the SLO: {task} (figures at the SLO's percentile)"
    return _tabular("lllrrrrrlll", header, body, caption)


def cost_table(task: str, rows: list[dict[str, Any]], metric: str | None, higher: bool) -> str:
    """Cost per 1,000 samples per model with its price and formula (a model without a price:
    ---, never 0), and the task's main metric with its CI."""
    body = [
        [
            escape(r["model"]),
            escape(r["pricing"]),
            escape(r["usd_text"]),
            escape(r["formula"]),
            with_ci(r["value"], r["ci_low"], r["ci_high"]),
        ]
        for r in rows
    ]
    quality = "Quality" if metric is None else f"{escape(metric)} {_arrow(higher)}"
    header = ["Model", "Price", "USD / 1,000 samples", "Formula", quality]
    return _tabular("lllll", header, body, f"Cost per 1,000 samples: {task}")


def judges_table(section: dict[str, Any]) -> str:
    """A judge metric per task: each judge's mean verdict, samples judged, invalid rate and
    errors per model beside the panel's value (with its CI); under each task, the agreement
    between its judges (α over all, κ per pair, each with n; all models pooled)."""
    body = []
    for task in section["tasks"]:
        for r in task["rows"]:
            rate = r["invalid_rate"]
            body.append(
                [
                    escape(task["name"]),
                    escape(r["judge"]),
                    escape(r["model"]),
                    number(r["mean"]),
                    str(r["judged"]),
                    "--" if _missing(rate) else f"{100 * rate:.1f}\\%",
                    str(r["errors"]),
                    with_ci(r["value"], r["ci_low"], r["ci_high"]),
                ]
            )
        found = task["agreement"]
        if found is not None:
            kappas = "; ".join(
                rf"$\kappa$({escape(p['judge_a'])}, {escape(p['judge_b'])}) = "
                f"{number(p['kappa'])} (n = {p['n']})"
                for p in found["pairs"]
            )
            text = (
                rf"{escape(task['name'])}, models pooled: $\alpha$ ({found['level']}) = "
                f"{number(found['alpha'])} (n = {found['alpha_n']}); {kappas}"
            )
            body.append([rf"\multicolumn{{8}}{{l}}{{\footnotesize {text}}}"])
    header = ["Task", "Judge", "Model", "Mean verdict", "Judged", "Invalid", "Errors", "Panel"]
    caption = f"Judge metric {section['name']}: each judge against the panel, and their agreement"
    return _tabular("lllrrrrr", header, body, caption)


def mws_vision_table(section: dict[str, Any]) -> str:
    """MWS-Vision-Bench per model: the five category means and Overall (the mean of the five),
    each with its 95% CI, best per column bold; ``--`` for a category not run and for the
    Overall of a model without all five (its count of categories beside it)."""
    categories = section["categories"]
    rows = section["rows"]
    best = {
        c["metric"]: _best(pd.Series([_cell_value(r["cells"][c["metric"]]) for r in rows]), True)
        for c in categories
    }
    best_overall = _best(pd.Series([_cell_value(r["overall"]) for r in rows]), True)
    body = []
    for r in rows:
        cells = [escape(r["model"])]
        for c in categories:
            cells.append(_mws_cell(r["cells"][c["metric"]], best[c["metric"]]))
        if r["overall"] is None:
            cells.append(f"-- {{\\scriptsize({len(r['categories'])} of {len(categories)})}}")
        else:
            cells.append(_mws_cell(r["overall"], best_overall))
        body.append(cells)
    header = ["Model", *[escape(c["label"]) for c in categories], "Overall"]
    caption = (
        "MWS-Vision-Bench: category means and Overall (the mean of the five), 95% CIs "
        "(Overall's from resampling pages)"
    )
    return _tabular("l" + "r" * (len(categories) + 1), header, body, caption)


def _cell_value(cell: dict[str, Any] | None) -> float | None:
    return None if cell is None else cell["value"]


def _mws_cell(cell: dict[str, Any] | None, best: float | None) -> str:
    if cell is None:
        return "--"
    bold = best is not None and round(cell["value"], DIGITS) == best
    return with_ci(cell["value"], cell["ci_low"], cell["ci_high"], bold=bold)
