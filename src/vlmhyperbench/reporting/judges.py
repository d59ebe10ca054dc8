"""The data of the "Judge metrics" section: what each judge said, and how far to trust it.

It reads ``judge_metrics`` from ``results/variants.json`` (none listed: no section) and, per
judge metric and each task that has it in the summary:

* per judge and model, from the score parquet's ``judge_verdict:<judge>`` and
  ``judge_status:<judge>`` columns: the judge's own mean verdict, the samples it judged, its
  invalid rate (invalid / judged, shown for every judge) and its errors, beside the panel's
  value (the metric's overall value in the summary);
* with two judges or more, their agreement on the task's samples, all models pooled (a sample
  is a (model, id) pair): Krippendorff's α over every judge (nominal for binary verdicts,
  interval for scores) and Cohen's κ per pair, each with its n
  (:mod:`vlmhyperbench.stats.agreement`);
* where samples carry a human label (the parquet's ``human_label``), each judge against it:
  κ, accuracy, n and the confusion matrix (human rows × judge columns); the label text is read
  as a verdict of the metric's kind (``correct``/``no``/``1``… for binary, a number in range for
  scores), an unreadable label is counted and left out;
* from the judgements files (``results/judgements/{metric}/{judge}/{model}/{task}.jsonl``) of
  every (model, task) of the metric's tasks: the served model names and system fingerprints
  each judge answered with (more than one of either: a drift warning), and its prompt and
  completion tokens, priced where the judge has an API price (a self-hosted judge: tokens only,
  its cost needs a load test; no price: "—", never 0);
* with a baseline run (``--baseline``): the judges whose served model names or fingerprints
  differ from the baseline's judgements of the same metric (a drift warning);
* a pairwise metric: per judge, how often its two orders disagreed (ties) and how often the
  same position won both times (:func:`~vlmhyperbench.stats.agreement.position_consistency`).

A missing or unreadable file is a warning, never a crash. Every listing is sorted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vlmhyperbench.config.schema import ApiCost, SelfHostedCost
from vlmhyperbench.judge.pairwise import LABELS as PAIRWISE_LABELS
from vlmhyperbench.judge.verdicts import parse_verdict
from vlmhyperbench.perf.cost import NO_COST, usd
from vlmhyperbench.reporting.judge_metrics import (
    LEVELS,
    JudgeMetric,
    judgements_path,
    read_judge_metrics,
)
from vlmhyperbench.reporting.perf import Price, pricing_text
from vlmhyperbench.reporting.results import Results, score_path
from vlmhyperbench.stats.agreement import (
    human_agreement,
    krippendorff_alpha,
    pairwise_kappas,
    position_consistency,
)

WHOLE_TEXT = r"(?s)\A(.*)\Z"  # a human label is read whole, not searched for JSON
BINARY_LABELS = {1.0: "correct", 0.0: "incorrect"}


@dataclass
class Served:
    """What one judge's judgements files of a metric say about the judge itself."""

    models: set[str] = field(default_factory=set)
    fingerprints: set[str] = field(default_factory=set)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    lines: int = 0
    files: int = 0
    # pairwise: each sample's verdict for the model in the first order and swapped (model side)
    first: list[float] = field(default_factory=list)
    swapped: list[float] = field(default_factory=list)


def _count(served: Served, line: dict[str, Any]) -> None:
    served.lines += 1
    for key, found in (("judge_model", served.models), ("system_fingerprint", served.fingerprints)):
        if line.get(key) is not None:
            found.add(str(line[key]))
    usage = line.get("usage") if isinstance(line.get("usage"), dict) else {}
    for key in ("prompt_tokens", "completion_tokens"):
        value = usage.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            setattr(served, key, getattr(served, key) + int(value))
    if line.get("first") in PAIRWISE_LABELS and line.get("swapped") in PAIRWISE_LABELS:
        served.first.append(float(line["first"]))
        served.swapped.append(float(line["swapped"]))


def read_judgements(
    root: Path, metric: JudgeMetric, pairs: list[tuple[str, str]]
) -> tuple[dict[str, Served], list[str]]:
    """Per judge of ``metric``: its served models, fingerprints and tokens over the judgements
    files of ``pairs`` (model, task); each missing or unreadable file a warning."""
    served = {judge: Served() for judge in metric.judges}
    warnings = []
    for judge in metric.judges:
        for model, task in sorted(set(pairs)):
            path = judgements_path(root, metric.name, judge, model, task)
            rel = path.relative_to(root).as_posix()
            if not path.is_file():
                warnings.append(f"{rel}: missing; judge {judge} on {model}/{task} not counted")
                continue
            try:
                lines = [
                    json.loads(text)
                    for text in path.read_text(encoding="utf-8").splitlines()
                    if text.strip()
                ]
                if not all(isinstance(line, dict) for line in lines):
                    raise ValueError("a line is not an object")
            except (OSError, ValueError) as exc:
                warnings.append(f"{rel}: unreadable ({type(exc).__name__}: {exc})")
                continue
            served[judge].files += 1
            for line in lines:
                _count(served[judge], line)
    return served, warnings


def read_judge_frame(
    root: Path, metric: JudgeMetric, model: str, task: str
) -> tuple[pd.DataFrame | None, str | None]:
    """A score parquet's id, verdict and status per judge (float / str, missing columns as
    None) and human label; ``None`` and a warning when the file cannot be read."""
    path = score_path(root, model, task, metric.name)
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        rel = path.relative_to(root).as_posix()
        return None, f"{rel}: unreadable ({type(exc).__name__}); judges of {model} not shown"
    out = pd.DataFrame({"id": frame["id"].astype(str)})
    for judge in metric.judges:
        verdicts = frame.get(f"judge_verdict:{judge}", pd.Series(None, index=frame.index))
        status = frame.get(f"judge_status:{judge}", pd.Series(None, index=frame.index))
        out[f"verdict:{judge}"] = pd.to_numeric(verdicts, errors="coerce").astype(float)
        out[f"status:{judge}"] = status.astype(object).where(status.notna(), None)
    human = frame.get("human_label", pd.Series(None, index=frame.index))
    out["human_label"] = human.astype(object).where(human.notna(), None)
    return out.drop_duplicates("id").set_index("id"), None


# --- per task ----------------------------------------------------------------------------------


def _panel(results: Results, metric: str, task: str) -> dict[str, dict[str, Any]]:
    overall = results.overall
    rows = overall[(overall["task"] == task) & (overall["metric"] == metric)]
    return {
        row.model: {"value": row.value, "ci_low": row.ci_low, "ci_high": row.ci_high}
        for row in rows.itertuples()
    }


def judge_rows(
    metric: JudgeMetric, frames: dict[str, pd.DataFrame], panel: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per judge, then model: its mean verdict, judged, invalid (rate) and errors, and the
    panel's value; every judge gets a row for every model, read or not."""
    rows = []
    for judge in metric.judges:
        for model in sorted(set(frames) | set(panel)):
            frame = frames.get(model)
            status = pd.Series(dtype=object) if frame is None else frame[f"status:{judge}"]
            verdicts = pd.Series(dtype=float) if frame is None else frame[f"verdict:{judge}"]
            judged = int(status.notna().sum())
            invalid = int((status == "invalid").sum())
            rows.append(
                {
                    "judge": judge,
                    "model": model,
                    "read": frame is not None,
                    "mean": float(verdicts.mean()) if verdicts.notna().any() else None,
                    "judged": judged,
                    "samples": 0 if frame is None else len(frame),
                    "invalid": invalid,
                    "errors": int((status == "error").sum()),
                    "invalid_rate": invalid / judged if judged else None,
                    **panel.get(model, {"value": None, "ci_low": None, "ci_high": None}),
                }
            )
    return rows


def pooled(frames: dict[str, pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """The frames' ``columns`` stacked, indexed by (model, id): all models of a task pooled."""
    parts = [frame[columns] for frame in frames.values()]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, keys=list(frames), names=["model", "id"])


def agreement(metric: JudgeMetric, ratings: pd.DataFrame) -> dict[str, Any] | None:
    """Between the judges (``ratings``: a column per judge): α over all with its n (samples
    rated twice or more) and κ per pair with its n; ``None`` with fewer than two judges."""
    if ratings.shape[1] < 2:
        return None
    level = LEVELS[metric.kind]
    alpha = krippendorff_alpha(ratings, level) if len(ratings) else math.nan
    pairs = pairwise_kappas(ratings) if len(ratings) else pd.DataFrame()
    return {
        "level": level,
        "alpha": None if math.isnan(alpha) else alpha,
        "alpha_n": int((ratings.notna().sum(axis=1) >= 2).sum()),
        "pairs": [
            {
                "judge_a": row.judge_a,
                "judge_b": row.judge_b,
                "kappa": None if math.isnan(row.kappa) else float(row.kappa),
                "n": int(row.n),
            }
            for row in pairs.itertuples()
        ],
    }


def human_value(metric: JudgeMetric, label: str | None) -> float | None:
    """A human label as a verdict of the metric's kind (``None``: unreadable or missing)."""
    if label is None or not str(label).strip():
        return None
    verdict = parse_verdict(
        str(label), metric.kind, score_min=metric.low, score_max=metric.high, regex=WHOLE_TEXT
    )
    return verdict.value


def value_text(metric: JudgeMetric, value: float) -> str:
    labels = {"binary": BINARY_LABELS, "pairwise": PAIRWISE_LABELS}.get(metric.kind, {})
    return labels.get(value, f"{value:g}")


def human_rows(
    metric: JudgeMetric, ratings: pd.DataFrame, labels: pd.Series
) -> tuple[list[dict[str, Any]], int, int]:
    """Per judge against the human labels: κ, accuracy, n and the confusion matrix (rows:
    human labels, columns: judge labels); and how many labels there are and how many of them
    could not be read as a verdict."""
    given = labels.dropna()
    human = given.map(lambda text: human_value(metric, text)).astype(float)
    unreadable = int(human.isna().sum())
    rows = []
    for judge in metric.judges:
        found = human_agreement(ratings[judge], human.reindex(ratings.index))
        confusion = found.confusion
        rows.append(
            {
                "judge": judge,
                "kappa": None if math.isnan(found.kappa) else found.kappa,
                "accuracy": None if math.isnan(found.accuracy) else found.accuracy,
                "n": found.n,
                "labels": [value_text(metric, v) for v in confusion.columns],
                "matrix": [
                    {"human": value_text(metric, h), "counts": [int(c) for c in counts]}
                    for h, counts in zip(confusion.index, confusion.to_numpy(), strict=True)
                ],
            }
        )
    return rows, len(given), unreadable


def task_part(
    results: Results, metric: JudgeMetric, task: str, models: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """One task's part of a judge metric: judge rows, agreement, agreement with humans."""
    frames, warnings = {}, []
    for model in models:
        frame, warning = read_judge_frame(results.root, metric, model, task)
        if frame is None:
            warnings.append(warning)
        else:
            frames[model] = frame
    # the compared-against model's ties with itself are no judge's: left out of agreement
    judged = {model: frame for model, frame in frames.items() if model != metric.against}
    ratings = pooled(judged, [f"verdict:{j}" for j in metric.judges])
    ratings.columns = list(metric.judges)
    labels = pooled(judged, ["human_label"])["human_label"]
    humans, n_labels, unreadable = (
        human_rows(metric, ratings, labels) if labels.notna().any() else ([], 0, 0)
    )
    return {
        "name": task,
        "rows": judge_rows(metric, frames, _panel(results, metric.name, task)),
        "agreement": agreement(metric, ratings),
        "n_pooled": len(ratings),
        "n_models": len(judged),
        "human": humans,
        "n_labels": n_labels,
        "unreadable_labels": unreadable,
    }, warnings


# --- per metric --------------------------------------------------------------------------------


def cost_row(judge: str, price: Price | None, served: Served) -> dict[str, Any]:
    """A judge's tokens over the run and their cost: API price × tokens; a self-hosted judge's
    cost needs a load test (tokens only); no price: "—"."""
    prompt, completion = served.prompt_tokens, served.completion_tokens
    value, formula = None, "no cost: in the registry"
    if isinstance(price, ApiCost):
        value = (
            prompt * price.usd_per_1m_input_tokens + completion * price.usd_per_1m_output_tokens
        ) / 1e6
        formula = (
            f"({prompt:,} input tokens × {usd(price.usd_per_1m_input_tokens)} + {completion:,} "
            f"output tokens × {usd(price.usd_per_1m_output_tokens)}) ÷ 10^6 = {usd(value)}"
        )
    elif isinstance(price, SelfHostedCost):
        formula = "self-hosted: tokens only; its cost needs a load test of the judge"
    return {
        "judge": judge,
        "pricing": pricing_text(price),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "lines": served.lines,
        "usd": value,
        "usd_text": usd(value) if value is not None else NO_COST,
        "formula": formula,
    }


def position_rows(served: dict[str, Served]) -> list[dict[str, Any]]:
    """Pairwise: per judge, over the samples it gave a verdict in both orders, how often the
    two differed (counted as ties) and how often the same position won both times."""
    rows = []
    for judge, found in served.items():
        bias = position_consistency(pd.Series(found.first), pd.Series(found.swapped))
        rows.append(
            {
                "judge": judge,
                "n": bias.n,
                **{
                    key: None if math.isnan(value) else value
                    for key, value in (
                        ("inconsistent_rate", bias.inconsistent_rate),
                        ("position_bias_rate", bias.position_bias_rate),
                        ("first_position_rate", bias.first_position_rate),
                        ("second_position_rate", bias.second_position_rate),
                    )
                },
            }
        )
    return rows


def drift(served: dict[str, Served]) -> list[dict[str, Any]]:
    """The judges whose served model name or system fingerprint changed within the run."""
    return [
        {"judge": judge, "models": sorted(s.models), "fingerprints": sorted(s.fingerprints)}
        for judge, s in served.items()
        if len(s.models) > 1 or len(s.fingerprints) > 1
    ]


def drift_text(metric: str, entry: dict[str, Any]) -> str:
    return (
        f"judge metric {metric}: the judge's served model / fingerprint changed within the run: "
        f"{entry['judge']} answered as {', '.join(entry['models']) or '—'} (fingerprints "
        f"{', '.join(entry['fingerprints']) or '—'})"
    )


def _metric_pairs(results: Results, metric: str) -> dict[str, list[str]]:
    """The tasks that have ``metric``, each with its models."""
    overall = results.overall
    tasks = [task for task in results.tasks() if metric in results.metrics(task)]
    return {t: sorted(set(overall.loc[overall["task"] == t, "model"])) for t in tasks}


def _served(
    results: Results, metric: JudgeMetric, models: dict[str, list[str]]
) -> tuple[dict[str, Served], list[str]]:
    """What each judge of ``metric`` served for ``models`` (task -> models judged)."""
    pairs = [(model, task) for task, names in models.items() for model in names]
    return read_judgements(results.root, metric, pairs)


def baseline_drift(
    metric: JudgeMetric, served: dict[str, Served], baseline: Results
) -> list[dict[str, Any]]:
    """The judges whose served model names or fingerprints differ from the baseline run's
    (judges the baseline did not have, or has no judgements of, are not compared)."""
    metrics, _ = read_judge_metrics(baseline.root)
    before_metric = next((m for m in metrics if m.name == metric.name), None)
    if before_metric is None:
        return []
    before, _ = _served(baseline, before_metric, _metric_pairs(baseline, metric.name))
    changed = []
    for judge, now in served.items():
        old = before.get(judge)
        if old is None or not old.files or not now.files:
            continue
        if old.models != now.models or old.fingerprints != now.fingerprints:
            changed.append({
                "judge": judge,
                "models": sorted(now.models), "fingerprints": sorted(now.fingerprints),
                "baseline_models": sorted(old.models),
                "baseline_fingerprints": sorted(old.fingerprints),
            })  # fmt: skip
    return changed


def baseline_drift_text(metric: str, entry: dict[str, Any]) -> str:
    return (
        f"judge metric {metric}: the judge {entry['judge']} answered as "
        f"{', '.join(entry['models']) or '—'} ({', '.join(entry['fingerprints']) or '—'}), the "
        f"baseline run's as {', '.join(entry['baseline_models']) or '—'} "
        f"({', '.join(entry['baseline_fingerprints']) or '—'}): its verdicts may not compare"
    )


def metric_section(
    results: Results, metric: JudgeMetric, baseline: Results | None = None
) -> tuple[dict[str, Any], list[str]]:
    models = _metric_pairs(results, metric.name)
    parts, warnings = [], []
    for task, names in models.items():
        part, found = task_part(results, metric, task, names)
        parts.append(part)
        warnings += found
    served, found = _served(results, metric, models)
    drifted = drift(served)
    against_baseline = baseline_drift(metric, served, baseline) if baseline else []
    section = {
        "name": metric.name,
        "judges": list(metric.judges),
        "kind": metric.kind,
        "range": [metric.low, metric.high] if metric.kind == "score" else None,
        "against": metric.against,
        "position": position_rows(served) if metric.kind == "pairwise" else [],
        "aggregate": metric.aggregate,
        "invalid": metric.invalid,
        "tasks": parts,
        "costs": [cost_row(j, metric.prices.get(j), served[j]) for j in metric.judges],
        "served": [
            {"judge": j, "models": sorted(s.models), "fingerprints": sorted(s.fingerprints)}
            for j, s in served.items()
        ],
        "drift": drifted,
        "baseline_drift": against_baseline,
    }
    warnings += found + [drift_text(metric.name, d) for d in drifted]
    return section, warnings + [baseline_drift_text(metric.name, d) for d in against_baseline]


def judge_sections(
    results: Results, baseline: Results | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per judge metric ``variants.json`` lists: its part of the section (none: the page has
    no such section); and the gaps (and drifts, within the run and from ``baseline``) as
    warnings."""
    metrics, warnings = read_judge_metrics(results.root)
    sections = []
    for metric in metrics:
        section, found = metric_section(results, metric, baseline)
        sections.append(section)
        warnings += found
    return sections, warnings
