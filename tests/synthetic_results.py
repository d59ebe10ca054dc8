"""A synthetic ``results/`` folder in the workflow's layout, for the report's tests and benchmark.

Models differ in skill; several questions share a page (``doc_id``); half the samples are
distorted copies (``subset`` blur, ``origin`` and ``severity`` set) of the other half. Score
JSONs carry normal-approximation CIs (the real ones are bootstrapped; the report only reads
them). Seeded: the same arguments give the same files.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vlmhyperbench.metrics.scoring import write_score_parquet
from vlmhyperbench.pipeline.provenance import provenance_path
from vlmhyperbench.reporting.summary import build_summary, write_summary
from vlmhyperbench.runtime.io import atomic_write_json

QUESTIONS_PER_PAGE = 4


def _entry(values: np.ndarray, errors: int) -> dict:
    n = len(values)
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    return {
        "value": mean,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "n": n,
        "n_samples": n,
        "n_errors": errors,
        "error_rate": errors / n if n else 0.0,
    }


def write_synthetic_results(
    root: str | Path,
    *,
    models: int = 3,
    tasks: int = 2,
    metrics: int = 3,
    samples: int = 40,
    seed: int = 0,
    provenance: bool = True,
) -> Path:
    root = Path(root)
    rng = np.random.default_rng(seed)
    model_names = [f"model-{m:02d}" for m in range(models)]
    json_paths = []
    for t in range(tasks):
        task = f"task_{t:02d}"
        half = samples // 2
        ids = [f"{task}-{k:05d}-{'clean' if k < half else 'blur'}" for k in range(samples)]
        clean_of = [ids[k - half] if k >= half else None for k in range(samples)]
        page = [f"page-{(k % half) // QUESTIONS_PER_PAGE:04d}" for k in range(samples)]
        subset = ["clean" if k < half else "blur" for k in range(samples)]
        doc_class = ["passport" if (k % half) % 2 == 0 else "invoice" for k in range(samples)]
        page_effect = rng.normal(0.0, 0.8, size=samples)
        page_effect = np.array([page_effect[int(p.split("-")[1])] for p in page])
        difficulty = rng.normal(0.0, 0.5, size=samples) + page_effect
        difficulty[half:] += 0.7  # distorted copies are harder
        for m, model in enumerate(model_names):
            skill = -0.5 + 1.5 * m / max(1, models - 1)
            p_right = 1.0 / (1.0 + np.exp(-(skill - difficulty)))
            errors = rng.random(samples) < 0.02
            right = (rng.random(samples) < p_right) & ~errors
            predictions = _predictions(rng, ids, errors, right, m)
            _write_predictions(root, model, task, predictions)
            for j in range(metrics):
                metric = f"metric_{j:02d}"
                higher = j % 5 != 4
                if j == 0:
                    values = right.astype(float)
                else:
                    noise = rng.normal(0.0, 0.15, size=samples)
                    values = np.clip(p_right + noise, 0.0, 1.0)
                    if not higher:
                        values = 1.0 - values
                frame = pd.DataFrame(
                    {
                        "id": ids,
                        "value": values,
                        "error": ["HTTP 400: image unreadable" if e else None for e in errors],
                        "prediction": [p["prediction"] for p in predictions],
                        "reference": ["ok"] * samples,
                        "doc_class": doc_class,
                        "question_type": ["surname"] * samples,
                        "subset": subset,
                        "field": [None] * samples,
                        "doc_id": page,
                        "origin": clean_of,
                        "severity": [0.0 if s == "clean" else 1.0 for s in subset],
                        "question": ["Какая фамилия указана?"] * samples,
                    }
                )
                json_paths.append(
                    _write_score(
                        root,
                        model,
                        task,
                        metric,
                        higher,
                        frame,
                        errors,
                        {"subset": subset, "doc_class": doc_class},
                    )
                )
            if provenance:
                _write_provenance(root, model, task)
    summary = build_summary(json_paths)
    write_summary(summary, root / "summary.parquet", root / "summary.csv")
    return root


#: The run the benchmarks measure by default (a paper's scale): models × tasks × metrics × samples.
PAPER_SCALE = {"models": 20, "tasks": 25, "metrics": 20, "samples": 1000}


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """A benchmark's ``--models``, ``--tasks``, ``--metrics`` and ``--samples`` (paper scale)."""
    for name, default in PAPER_SCALE.items():
        parser.add_argument(f"--{name}", type=int, default=default)


def write_synthetic_results_once(
    root: str | Path, scale: argparse.Namespace, seed: int = 0
) -> Path:
    """For the benchmarks: ``write_synthetic_results`` at ``scale`` (``add_scale_arguments``'
    options) unless ``root`` already holds a run (a kept ``--workdir``), saying how long it
    took."""
    root = Path(root)
    if not (root / "summary.parquet").is_file():
        start = time.perf_counter()
        shape = {name: getattr(scale, name) for name in PAPER_SCALE}
        write_synthetic_results(root, **shape, seed=seed)
        print(f"synthesised {root} in {time.perf_counter() - start:.0f} s")
    return root


def _predictions(
    rng: np.random.Generator, ids: list[str], errors: np.ndarray, right: np.ndarray, m: int
) -> list[dict]:
    """Model ``m``'s prediction lines: right ("ok"), wrong, or a failed request."""
    predictions = []
    for k, sample_id in enumerate(ids):
        latency = float(200 + 150 * m + rng.gamma(2.0, 40.0))
        predictions.append(
            {
                "id": sample_id,
                "prediction": None if errors[k] else ("ok" if right[k] else "Иванов"),
                "error": "HTTP 400: image unreadable" if errors[k] else None,
                "performance": {
                    "latency_ms": latency,
                    "ttft_ms": latency * 0.4,
                    "tpot_ms": 12.0 + m,
                    "prompt_tokens": 300,
                    "completion_tokens": 8,
                    "peak_memory_mb": 1000.0 + 500 * m,
                },
            }
        )
    return predictions


def _write_predictions(root: Path, model: str, task: str, predictions: list[dict]) -> None:
    path = root / "predictions" / model / f"{task}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions),
        encoding="utf-8",
    )


def _write_score(
    root: Path,
    model: str,
    task: str,
    metric: str,
    higher: bool,
    frame: pd.DataFrame,
    errors: np.ndarray,
    group_columns: dict[str, list[str]],
) -> Path:
    """The score parquet (``frame``: per-sample rows) and JSON; returns the JSON's path."""
    values = frame["value"].to_numpy(dtype=float)
    samples = len(values)
    base = root / "scores" / model / task / metric
    base.parent.mkdir(parents=True, exist_ok=True)
    write_score_parquet(frame, base.with_suffix(".parquet"))
    n_err = int(errors.sum())
    groups = {}
    for column, keys in group_columns.items():
        keys = np.array(keys)
        groups[column] = {
            g: _entry(values[keys == g], int(errors[keys == g].sum()))
            for g in sorted(set(keys.tolist()))
        }
    score = {
        "metric": metric,
        "model": model,
        "task": task,
        "higher_is_better": higher,
        "n": samples,
        "n_errors": n_err,
        "error_rate": n_err / samples,
        "overall": _entry(values, n_err),
        "groups": groups,
    }
    atomic_write_json(base.with_suffix(".json"), score)
    return base.with_suffix(".json")


def _write_provenance(root: Path, model: str, task: str) -> None:
    atomic_write_json(
        provenance_path(root, model, task),
        {
            "schema_version": 1,
            "code": {"revision": "0" * 40, "dirty": False},
            "model": {"name": model, "backend": "hf", "hub_id": f"org/{model}"},
            "dataset": {"name": f"{task}_data", "version": "1"},
            "task": {"name": task, "prompt_fingerprint": "abc"},
            "environment": {"python": "3.11.7", "packages": {"numpy": "2"}, "gpus": []},
            "generation": {"max_tokens": 64, "temperature": 0.0, "seed": 0},
            "seeds": {"generation": 0, "scoring_bootstrap": 0},
            "started": "2026-01-02T03:04:05Z",
            "ended": "2026-01-02T03:14:05Z",
            "wall_s": 600.0,
        },
    )


# --- a run with a sweep ------------------------------------------------------------------------

SWEEP_TASK = "demo_ocr"
SWEEP_GROUP = "tess"
PLAIN_MODEL = "plain-vlm"
LANGUAGES = "models.engine_args.languages"
PSM = "models.engine_args.psm"


def sweep_name(languages: str, psm: str, base: tuple[str, str]) -> str:
    """A grid point's model name: the group's plain name at its base point, else ``tess@…``
    with the settings that differ from the base, by key."""
    differ = [
        (k, v) for k, v, b in (("languages", languages, base[0]), ("psm", psm, base[1])) if v != b
    ]
    return SWEEP_GROUP + ("@" + ",".join(f"{k}={v}" for k, v in differ) if differ else "")


def _sweep_frame(
    ids: list[str], values: np.ndarray, page: list[str], right: np.ndarray
) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {
            "id": ids,
            "value": values,
            "error": [None] * n,
            "prediction": ["ok" if r else "Иванов" for r in right],
            "reference": ["ok"] * n,
            "doc_class": ["passport" if k % 2 == 0 else "invoice" for k in range(n)],
            "question_type": ["text"] * n,
            "subset": ["clean"] * n,
            "field": [None] * n,
            "doc_id": page,
            "origin": [None] * n,
            "severity": [0.0] * n,
            "question": ["Прочитайте текст"] * n,
        }
    )


def _sweep_model(
    root: Path, model: str, ids: list[str], page: list[str], quality: tuple, latency_ms: np.ndarray
) -> list[Path]:
    """One model's predictions, its two score files (cer ↓ main, exact_match ↑) and provenance."""
    right, cer = quality
    _write_predictions(
        root,
        model,
        SWEEP_TASK,
        [
            {
                "id": i,
                "prediction": "ok" if r else "Иванов",
                "error": None,
                "performance": {
                    "latency_ms": float(t),
                    "ttft_ms": float(t),
                    "completion_tokens": 20,
                },
            }
            for i, r, t in zip(ids, right, latency_ms, strict=True)
        ],
    )
    errors = np.zeros(len(ids), dtype=bool)
    doc_class = {"doc_class": ["passport" if k % 2 == 0 else "invoice" for k in range(len(ids))]}
    paths = [
        _write_score(
            root,
            model,
            SWEEP_TASK,
            metric,
            higher,
            _sweep_frame(ids, values, page, right),
            errors,
            doc_class,
        )
        for metric, higher, values in (("cer", False, cer), ("exact_match", True, right * 1.0))
    ]
    _write_provenance(root, model, SWEEP_TASK)
    return paths


def write_sweep_results(
    root: str | Path,
    *,
    languages: tuple[str, ...] = ("rus", "rus+eng"),
    psm: tuple[str, ...] = ("4", "6"),
    samples: int = 60,
    seed: int = 0,
    plain: bool = True,
) -> Path:
    """A run with a sweep, like Tesseract's: ``tess`` over languages × psm (its base point is
    the last value of each) plus a plain model, on one task (``cer`` ↓ main, ``exact_match``),
    and ``variants.json``. psm decides quality (the first value best by far); languages only
    latency (``rus`` faster): variants that differ in languages alone answer exactly alike."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    ids = [f"ocr-{k:04d}" for k in range(samples)]
    page = [f"page-{k // QUESTIONS_PER_PAGE:04d}" for k in range(samples)]
    pages = rng.normal(0.0, 0.6, size=samples // QUESTIONS_PER_PAGE + 1)
    difficulty = (
        rng.normal(0.0, 0.4, size=samples) + pages[np.arange(samples) // QUESTIONS_PER_PAGE]
    )
    base = (languages[-1], psm[-1])
    paths, entries = [], {}
    for k, psm_value in enumerate(psm):
        skill = 2.0 - 3.0 * k / max(1, len(psm) - 1)
        p_right = 1.0 / (1.0 + np.exp(-(skill - difficulty)))
        right = rng.random(samples) < p_right
        cer = np.clip(0.6 * (1.0 - p_right) + rng.normal(0.0, 0.03, size=samples), 0.0, 1.0)
        for j, language in enumerate(languages):
            model = sweep_name(language, psm_value, base)
            latency = 150.0 + 100.0 * j + 10.0 * k + rng.gamma(2.0, 10.0, size=samples)
            paths += _sweep_model(root, model, ids, page, (right, cer), latency)
            settings = {
                path: (int(v) if v.isdigit() else v)
                for path, v, b in ((LANGUAGES, language, base[0]), (PSM, psm_value, base[1]))
                if v != b
            }
            entries[model] = {
                "base": SWEEP_GROUP if settings else None,
                "group": SWEEP_GROUP,
                "server": model,
                "settings": settings,
                "swept": {PSM: psm_value, LANGUAGES: language},
            }
    if plain:
        p_right = 1.0 / (1.0 + np.exp(-(0.5 - difficulty)))
        right = rng.random(samples) < p_right
        cer = np.clip(0.6 * (1.0 - p_right) + rng.normal(0.0, 0.03, size=samples), 0.0, 1.0)
        paths += _sweep_model(root, PLAIN_MODEL, ids, page, (right, cer), np.full(samples, 400.0))
        entries[PLAIN_MODEL] = {
            "base": None,
            "group": PLAIN_MODEL,
            "server": PLAIN_MODEL,
            "settings": {},
            "swept": {},
        }
    sweep = {
        "block": "runs[0]",
        "base": SWEEP_GROUP,
        "tasks": [SWEEP_TASK],
        "axes": {LANGUAGES: list(languages), PSM: list(psm)},
    }
    atomic_write_json(root / "variants.json", {"variants": entries, "sweeps": [sweep]})
    write_summary(build_summary(paths), root / "summary.parquet", root / "summary.csv")
    return root


# --- a run with serving performance and cost ------------------------------------------------------

PERF_SELF_HOSTED = "model-00"  # $2.00/h, load-tested on task_00
PERF_API = "model-01"  # behind an endpoint: $1 / $2 per 1M input / output tokens, no perf file
PERF_NO_COST = "model-02"  # load-tested, no cost
PERF_UNTRUSTED = "evil<script>alert(1)"  # a perf result only (its benchmark run left nothing)
PERF_HARDWARE = "1× NVIDIA H100 80GB HBM3"


def perf_level(level: float, rps: float, e2e_p95: float, meets: bool) -> dict:
    """One measured level (as ``LevelResult`` dumps it): latencies scale with ``e2e_p95``."""

    def summary(p95: float) -> dict:
        return {"mean": p95 * 0.7, "p50": p95 * 0.6, "p90": p95 * 0.9, "p95": p95, "p99": p95 * 1.1}

    return {
        "level": level, "requests": 20, "completed": 20, "errors": 0, "error_rate": 0.0,
        "window_s": 20 / rps, "request_throughput": rps, "output_throughput": rps * 8,
        "goodput": rps if meets else rps * 0.5, "ttft_ms": summary(e2e_p95 * 0.3),
        "tpot_ms": summary(e2e_p95 * 0.05), "itl_ms": summary(e2e_p95 * 0.05),
        "e2e_ms": summary(e2e_p95), "meets_slo": meets,
    }  # fmt: skip


def perf_document(model: str, task: str, ladders: list[dict], label: str = PERF_HARDWARE) -> dict:
    """A ``PerfResult`` as its JSON holds it (validated by the report)."""
    return {
        "model": model, "task": task, "served_model": model, "backend": "vllm", "samples": 40,
        "hardware": {"cpu": "AMD EPYC 7B13", "cpu_count": 16, "memory_gib": 128.0,
                     "gpus": ["NVIDIA H100 80GB HBM3"], "label": label},
        "settings": {"concurrency": [1, 2, 4, 8], "rates": [1.0, 2.0], "requests": 20,
                     "slo": {"ttft_ms": 500.0, "e2e_ms": 2000.0}, "percentile": 95},
        "ladders": ladders, "fingerprint": "f" * 16,
        "started_at": "2026-01-02T03:04:05+00:00", "finished_at": "2026-01-02T03:24:05+00:00",
    }  # fmt: skip


# model-00's concurrency ladder: 1, 2, 4 meet the SLO, 8 does not (more requests/s, 4.4);
# bisection: 6 meets (4.1 requests/s), 7 does not. The rate ladder tops out at 1.9 requests/s.
SELF_HOSTED_LADDERS = [
    {"kind": "concurrency", "best": 6.0, "reason": "bisected", "best_throughput": 4.1,
     "levels": [perf_level(1, 1.0, 400, True), perf_level(2, 1.9, 600, True),
                perf_level(4, 3.5, 1200, True), perf_level(8, 4.4, 3000, False),
                perf_level(6, 4.1, 1900, True), perf_level(7, 4.3, 2300, False)]},
    {"kind": "rate", "best": 2.0, "reason": "ladder_top", "best_throughput": 1.9,
     "levels": [perf_level(1.0, 1.0, 380, True), perf_level(2.0, 1.9, 700, True)]},
]  # fmt: skip
NO_COST_LADDERS = [
    {"kind": "concurrency", "best": None, "reason": "first_level_fails", "best_throughput": None,
     "levels": [perf_level(1, 0.5, 2500, False)]},
]  # fmt: skip


def add_perf_results(root: str | Path, task: str = "task_00") -> Path:
    """Onto a :func:`write_synthetic_results` folder: ``variants.json`` with each model's cost
    and the perf pairs, the perf JSONs, and token usage in the API model's predictions (prompt
    tokens 1000 + k on its k-th line, 50 completion tokens)."""
    root = Path(root)
    costs = {
        PERF_SELF_HOSTED: {"usd_per_hour": 2.0},
        PERF_API: {"usd_per_1m_input_tokens": 1.0, "usd_per_1m_output_tokens": 2.0},
    }
    models = [*sorted(p.name for p in (root / "predictions").iterdir()), PERF_UNTRUSTED]
    variants = {
        m: {"base": None, "group": m, "server": None if m == PERF_API else m, "settings": {},
            "swept": {}, "cost": costs.get(m), "endpoint": m == PERF_API}
        for m in models
    }  # fmt: skip
    pairs = [(PERF_SELF_HOSTED, task), (PERF_NO_COST, task), (PERF_UNTRUSTED, task)]
    pairs.append((PERF_NO_COST, "task_01"))  # listed, but its job left no file: a gap
    perf = [{"model": m, "task": t} for m, t in pairs]
    atomic_write_json(root / "variants.json", {"variants": variants, "sweeps": [], "perf": perf})
    documents = {
        PERF_SELF_HOSTED: perf_document(PERF_SELF_HOSTED, task, SELF_HOSTED_LADDERS),
        PERF_NO_COST: perf_document(PERF_NO_COST, task, NO_COST_LADDERS),
        PERF_UNTRUSTED: perf_document(PERF_UNTRUSTED, task, NO_COST_LADDERS, "<b>" + PERF_HARDWARE),
    }
    for model, document in documents.items():
        atomic_write_json(root / "perf" / model / f"{task}.json", document)
    atomic_write_json(root / "perf" / "model-01" / "task_01.json", {"not": "listed"})  # ignored
    path = root / "predictions" / PERF_API / f"{task}.jsonl"
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for k, line in enumerate(lines):
        line["usage"] = {"prompt_tokens": 1000 + k, "completion_tokens": 50, "total_tokens": 0}
    _write_predictions(root, PERF_API, task, lines)
    return root


# --- a run with a judge metric ------------------------------------------------------------------

JUDGE_METRIC = "judged_ok"
JUDGE_A = "judge-a"  # API-priced: $1 / $2 per 1M input / output tokens
JUDGE_UNTRUSTED = "evil<script>judge"  # no price
JUDGE_SERVED = {JUDGE_A: "org/judge-a-7b", JUDGE_UNTRUSTED: "org/evil-13b"}
# Pooled over model-00 (rows 0-5) and model-01 (rows 6-11) of a 6-sample task: rows 0-9 are the
# 10-sample fixture of tests/unit/test_stats_agreement.py (κ = 8/13, α = 0.62); on rows 10 and
# 11 the untrusted judge's verdict is invalid and an error (so α and κ see only rows 0-9).
JUDGE_VERDICTS = {
    JUDGE_A: [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0],
    JUDGE_UNTRUSTED: [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, "invalid", "error"],
}
# Human labels as people write them; None: no label; "maybe": unreadable (left out).
HUMAN_LABELS = ["correct", "yes", "1", "True", "incorrect", "no", "0", "false"]
HUMAN_LABELS += [None, None, "Correct", "maybe"]


def _judgement(judge: str, sample_id: str, verdict: float | str, served: str) -> dict:
    failed = verdict in ("invalid", "error")
    return {
        "id": sample_id,
        "verdict": None if failed else float(verdict),
        "label": None if failed else ("correct" if verdict else "incorrect"),
        "status": verdict if failed else "ok",
        "detail": "JSON verdict" if not failed else f"{verdict} <b>reply</b>",
        "error": "HTTP 500" if verdict == "error" else None,
        "reply": '{"verdict": "<script>alert(1)</script>"}',
        "judge_model": served,
        "system_fingerprint": "fp_1",
        "usage": None
        if verdict == "error"
        else {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
        "latency_ms": 50.0,
    }


def add_judge_results(root: str | Path, task: str = "task_00", served: dict | None = None) -> Path:
    """Onto a 2-model, 6-sample :func:`write_synthetic_results` folder: a binary judge metric
    on ``task`` judged by :data:`JUDGE_A` and :data:`JUDGE_UNTRUSTED` (verdicts
    :data:`JUDGE_VERDICTS`, human labels :data:`HUMAN_LABELS`), its judgements files, score
    files (the panel's mean verdict) and ``variants.json``; ``served``: (judge, model) → the
    served model name in that judgements file (default: :data:`JUDGE_SERVED`)."""
    root = Path(root)
    models = ["model-00", "model-01"]
    judges = [JUDGE_A, JUDGE_UNTRUSTED]
    order = read_summary_order(root)
    for m, model in enumerate(models):
        frame = pd.read_parquet(root / "scores" / model / task / "metric_00.parquet")
        rows = range(6 * m, 6 * m + len(frame))
        verdicts = {}
        for judge in judges:
            given = [JUDGE_VERDICTS[judge][r] for r in rows]
            name = (served or {}).get((judge, model), JUDGE_SERVED[judge])
            lines = [_judgement(judge, i, v, name) for i, v in zip(frame["id"], given, strict=True)]
            path = root / "judgements" / JUDGE_METRIC / judge / model / f"{task}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
            verdicts[judge] = [x["verdict"] for x in lines]
            frame[f"judge_verdict:{judge}"] = verdicts[judge]
            frame[f"judge_status:{judge}"] = [x["status"] for x in lines]
        frame["human_label"] = [HUMAN_LABELS[r] for r in rows]
        frame["value"] = pd.DataFrame(verdicts).astype(float).mean(axis=1)
        errors = np.zeros(len(frame), dtype=bool)
        order.append(_write_score(root, model, task, JUDGE_METRIC, True, frame, errors, {}))
    prices = {JUDGE_A: {"usd_per_1m_input_tokens": 1.0, "usd_per_1m_output_tokens": 2.0}}
    variants = {m: {"base": None, "group": m, "settings": {}, "swept": {}} for m in models}
    judge_metrics = {
        JUDGE_METRIC: {"judges": judges, "verdict": {"type": "binary", "min": 1.0, "max": 5.0},
                       "aggregate": "mean", "invalid": "exclude",
                       "costs": {j: prices.get(j) for j in judges}},
    }  # fmt: skip
    document = {"variants": variants, "sweeps": [], "perf": [], "judge_metrics": judge_metrics}
    atomic_write_json(root / "variants.json", document)
    write_summary(build_summary(order), root / "summary.parquet", root / "summary.csv")
    return root


def read_summary_order(root: Path) -> list[Path]:
    """The score JSONs of a folder's summary, in its order."""
    summary = pd.read_parquet(root / "summary.parquet")
    keys = dict.fromkeys(zip(summary["model"], summary["task"], summary["metric"], strict=True))
    return [root / "scores" / m / t / f"{x}.json" for m, t, x in keys]
