"""The data of the "Serving performance and cost" section, per task.

It reads the perf JSONs that ``results/variants.json`` lists under ``perf`` (a listed file that
is missing or unreadable is a warning; a file not listed is ignored) and each model's ``cost``
there, and builds per task:

* the **curves**: per model and ladder (closed-loop concurrency, open-loop Poisson rate), every
  measured level in ascending order with its requests/s, output tokens/s, e2e/TTFT/TPOT p50 and
  p95, goodput and whether it met the SLO;
* the **goodput table**: per model and ladder, the highest load that met the SLO (the search's
  answer), its requests/s and goodput, TTFT/TPOT/e2e at the SLO's percentile there, and why the
  search stopped;
* the **cost** per 1,000 samples with its formula (:mod:`vlmhyperbench.perf.cost`) for every
  model of the task (models behind an endpoint have no perf file: their API cost comes from
  the tokens), "—" where the model has no ``cost:``;
* the **quality-vs-cost Pareto front**: the task's main metric (its first, with its CI) against
  cost per 1,000 samples, models without a cost left out (and named).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from vlmhyperbench.config.schema import SLO, ApiCost, Price, SelfHostedCost
from vlmhyperbench.perf.cost import cost_per_1k_samples, significant, usd
from vlmhyperbench.perf.result import LadderResult, LevelResult, PerfResult
from vlmhyperbench.reporting import figures
from vlmhyperbench.reporting.results import Results
from vlmhyperbench.reporting.serving import pareto_front
from vlmhyperbench.reporting.variants import Variants, load_variants

PERF_DIR = "perf"
REASONS = {
    "bisected": "bisected between the last level that met the SLO and the first that did not",
    "saturated": "throughput saturated (more load bought latency, not requests/s)",
    "ladder_top": "every level of the ladder met the SLO (its top)",
    "first_level_fails": "not even the first level met the SLO",
}
LADDER_UNITS = {"concurrency": "concurrent requests", "rate": "requests/s offered (Poisson)"}


def perf_path(root: Path, model: str, task: str) -> Path:
    return root / PERF_DIR / model / f"{task}.json"


def read_perf_results(
    root: Path, pairs: list[tuple[str, str]]
) -> tuple[dict[tuple[str, str], PerfResult], list[str]]:
    """The listed (model, task) pairs' perf JSONs; each missing or unreadable one a warning."""
    found, warnings = {}, []
    for model, task in sorted(set(pairs)):
        path = perf_path(root, model, task)
        rel = path.relative_to(root).as_posix()
        if not path.is_file():
            warnings.append(f"{rel}: missing; serving performance of {model} on {task} not shown")
            continue
        try:
            found[(model, task)] = PerfResult.model_validate_json(path.read_bytes())
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            first = str(exc).splitlines()[0] if str(exc) else ""
            warnings.append(f"{rel}: unreadable ({type(exc).__name__}: {first})")
    return found, warnings


@dataclass(frozen=True)
class Prices:
    by_model: dict[str, Price] = field(default_factory=dict)  # models without a cost: absent
    endpoints: frozenset[str] = frozenset()  # the models behind an API endpoint


def read_prices(variants: Variants | None) -> tuple[Prices, list[str]]:
    """Each model's ``cost`` and ``endpoint`` from ``variants.json``; a cost that is not a
    price is a warning (and no cost)."""
    prices, warnings = {}, []
    entries = sorted((variants.models if variants else {}).items())
    for name, variant in entries:
        if variant.cost is None:
            continue
        kind = SelfHostedCost if "usd_per_hour" in variant.cost else ApiCost
        try:
            prices[name] = kind.model_validate(variant.cost)
        except ValidationError as exc:
            problem = exc.errors()[0]
            warnings.append(
                f"variants.json: model {name}: cost unreadable ({problem['loc']}: "
                f"{problem['msg']}); shown as no cost"
            )
    endpoints = frozenset(name for name, variant in entries if variant.endpoint)
    return Prices(prices, endpoints), warnings


def pricing_text(price: Price | None) -> str:
    if price is None:
        return "—"
    if isinstance(price, SelfHostedCost):
        return f"self-hosted, {usd(price.usd_per_hour)}/h"
    return (
        f"API, {usd(price.usd_per_1m_input_tokens)} / {usd(price.usd_per_1m_output_tokens)} "
        "per 1M input / output tokens"
    )


def slo_text(slo: SLO, percentile: int, max_error_rate: float) -> str:
    """``p95 TTFT ≤ 500 ms, p95 TPOT ≤ 50 ms; errors ≤ 0%``."""
    limits = [
        f"p{percentile} {name} ≤ {significant(limit)} ms"
        for name, limit in (("TTFT", slo.ttft_ms), ("TPOT", slo.tpot_ms), ("e2e", slo.e2e_ms))
        if limit is not None
    ]
    errors = f"errors ≤ {100 * max_error_rate:g}%"
    return ", ".join(limits) + f"; {errors}" if limits else f"no latency SLO; {errors}"


def level_text(kind: str, level: float | None) -> str:
    if level is None:
        return "—"
    return str(int(level)) if kind == "concurrency" else f"{significant(level)} req/s"


def _at(summary: Any, percentile: int) -> float:
    return math.nan if summary is None else summary.at(percentile)


def _point(level: LevelResult) -> dict[str, Any]:
    return {
        "level": level.level,
        "requests_per_s": level.request_throughput,
        "output_tokens_per_s": level.output_throughput,
        **{
            f"{name}_p{p}_ms": _at(getattr(level, f"{name}_ms"), p)
            for name in ("e2e", "ttft", "tpot")
            for p in (50, 95)
        },
        "goodput": math.nan if level.goodput is None else level.goodput,
        "error_rate": level.error_rate,
        "meets_slo": level.meets_slo,
    }


def _levels(ladder: LadderResult) -> list[LevelResult]:
    """The ladder's levels by load (a level measured twice: its last measurement)."""
    return sorted({level.level: level for level in ladder.levels}.values(), key=lambda x: x.level)


def curves(model: str, result: PerfResult) -> list[dict[str, Any]]:
    """Per ladder of one model: its levels as points, in ascending load."""
    return [
        {
            "model": model,
            "ladder": ladder.kind,
            "hardware": result.hardware.label,
            "points": [_point(level) for level in _levels(ladder)],
        }
        for ladder in result.ladders
    ]


def goodput_row(model: str, result: PerfResult, ladder: LadderResult) -> dict[str, Any]:
    """One ladder's answer: the highest load that met the SLO and its figures there."""
    settings = result.settings
    best = next((lv for lv in reversed(ladder.levels) if lv.level == ladder.best), None)
    pct = settings.percentile
    return {
        "model": model,
        "hardware": result.hardware.label,
        "ladder": ladder.kind,
        "best": ladder.best,
        "best_text": level_text(ladder.kind, ladder.best),
        "requests_per_s": None if best is None else best.request_throughput,
        "goodput": None if best is None else best.goodput,
        "ttft_ms": None if best is None else _at(best.ttft_ms, pct),
        "tpot_ms": None if best is None else _at(best.tpot_ms, pct),
        "e2e_ms": None if best is None else _at(best.e2e_ms, pct),
        "percentile": pct,
        "slo": slo_text(settings.slo, pct, settings.max_error_rate),
        "reason": ladder.reason,
        "reason_text": REASONS.get(ladder.reason, ladder.reason),
        "levels": len(ladder.levels),
    }


def _quality(results: Results, task: str) -> tuple[str | None, bool, pd.DataFrame]:
    """The task's main metric, its direction and its overall rows (model, value, CI)."""
    metrics = results.metrics(task)
    if not metrics:
        return None, True, pd.DataFrame(columns=["model", "value", "ci_low", "ci_high"])
    overall = results.overall
    rows = overall[(overall["task"] == task) & (overall["metric"] == metrics[0])]
    return metrics[0], results.higher_is_better(task, metrics[0]), rows


def _answered_tokens(results: Results, model: str, task: str) -> tuple[list, list]:
    frame = results.predictions.get((model, task))
    if frame is None or "input_tokens" not in frame:
        return [], []
    ok = frame[frame["error"].isna()]
    return ok["input_tokens"].tolist(), ok["output_tokens"].tolist()


def cost_rows(
    results: Results,
    task: str,
    models: list[str],
    measured: dict[str, PerfResult],
    prices: Prices,
) -> list[dict[str, Any]]:
    """Every model of the task with its price, cost per 1,000 samples, formula and quality
    (``measured``: model → its perf result on the task)."""
    _, _, quality = _quality(results, task)
    by_model = {row.model: row for row in quality.itertuples()}
    rows = []
    for model in models:
        result = measured.get(model)
        prompt, completion = _answered_tokens(results, model, task)
        price = prices.by_model.get(model)
        cost = cost_per_1k_samples(
            price,
            None if result is None else result.best_throughput(),
            prompt,
            completion,
            measured=result is not None,
        )
        entry = by_model.get(model)
        rows.append(
            {
                "model": model,
                "pricing": pricing_text(price),
                "basis": cost.basis,
                "usd_per_1k_samples": cost.usd_per_1k_samples,
                "usd_text": usd(cost.usd_per_1k_samples),
                "formula": cost.formula,
                "hardware": None if result is None else result.hardware.label,
                "endpoint": model in prices.endpoints,
                **{
                    key: math.nan if entry is None else float(getattr(entry, key))
                    for key in ("value", "ci_low", "ci_high")
                },
            }
        )
    return rows


def _plotted(row: dict[str, Any]) -> bool:
    return row["usd_per_1k_samples"] is not None and row["value"] == row["value"]


def cost_pareto(rows: list[dict[str, Any]], higher: bool) -> tuple[list[dict], list[str]]:
    """The rows with a cost and a quality, each marked ``front`` (on the Pareto front of
    quality against cost); and the models left out (no cost or no quality)."""
    points = [row for row in rows if _plotted(row)]
    left_out = [row["model"] for row in rows if not _plotted(row)]
    if points:
        mask = pareto_front(
            pd.Series([p["value"] for p in points], dtype=float).to_numpy(),
            pd.Series([p["usd_per_1k_samples"] for p in points], dtype=float).to_numpy(),
            higher,
        )
        points = [{**p, "front": bool(on)} for p, on in zip(points, mask, strict=True)]
    return points, left_out


def hardware_of(measured: dict[str, PerfResult]) -> list[dict[str, Any]]:
    """Each hardware label with the models measured on it (by label, then model)."""
    labels: dict[str, list[str]] = {}
    for model, result in sorted(measured.items()):
        labels.setdefault(result.hardware.label, []).append(model)
    return [{"label": label, "models": models} for label, models in sorted(labels.items())]


def task_section(
    results: Results,
    task: str,
    models: list[str],
    measured: dict[str, PerfResult],
    prices: Prices,
    specs: list[figures.Spec],
) -> dict[str, Any]:
    """One task's part of the section (``measured``: model → its perf result on the task);
    its figures go into ``specs`` by name."""
    metric, higher, _ = _quality(results, task)
    costs = cost_rows(results, task, models, measured, prices)
    points, left_out = cost_pareto(costs, higher)
    task_curves = [c for model, r in sorted(measured.items()) for c in curves(model, r)]
    goodput = [
        goodput_row(model, r, ladder)
        for model, r in sorted(measured.items())
        for ladder in r.ladders
    ]
    hardware = hardware_of(measured)
    fig_perf = f"perf_{task}" if task_curves else None
    if fig_perf:
        labels = [h["label"] for h in hardware]
        specs.append(("perf_figure", (fig_perf, task_curves, labels)))
    fig_pareto = f"cost_pareto_{task}" if points and metric is not None else None
    if fig_pareto:
        specs.append(("cost_pareto_figure", (fig_pareto, metric, higher, points, len(left_out))))
    return {
        "name": task,
        "metric": metric,
        "higher": higher,
        "curves": task_curves,
        "goodput": goodput,
        "slos": sorted({row["slo"] for row in goodput}),
        "percentiles": sorted({row["percentile"] for row in goodput}),
        "costs": costs,
        "pareto": points,
        "front": [p["model"] for p in points if p["front"]],
        "left_out": left_out,
        "hardware": hardware,
        "fig_perf": fig_perf,
        "fig_pareto": fig_pareto,
    }


def perf_sections(
    results: Results, specs: list[figures.Spec]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per task with a perf result or a model with a cost: its part of the section (none: the
    page has no such section); and the gaps as warnings."""
    variants, _ = load_variants(results.root)  # its own gaps are the variants' warnings
    pairs = variants.perf if variants is not None else []
    measured, warnings = read_perf_results(results.root, pairs)
    prices, price_warnings = read_prices(variants)
    tasks = list(dict.fromkeys([*results.tasks(), *sorted({task for _, task in measured})]))
    sections = []
    for task in tasks:
        mine = {model: r for (model, t), r in measured.items() if t == task}
        ran = results.overall.loc[results.overall["task"] == task, "model"].tolist()
        models = sorted({*ran, *mine})
        if not mine and not any(model in prices.by_model for model in models):
            continue
        sections.append(task_section(results, task, models, mine, prices, specs))
    return sections, warnings + price_warnings


def attach_figures(sections: list[dict[str, Any]], uris: dict[str, str]) -> None:
    """Replace the sections' figure names with their rendered ``data:`` URIs."""
    for section in sections:
        for key in ("fig_perf", "fig_pareto"):
            section[key] = uris.get(section[key]) if section[key] else None
