"""A synthetic ``results/`` folder in the workflow's layout, for the report's tests and benchmark.

Models differ in skill; several questions share a page (``doc_id``); half the samples are
distorted copies (``subset`` blur, ``origin`` and ``severity`` set) of the other half. Score
JSONs carry normal-approximation CIs (the real ones are bootstrapped; the report only reads
them). Seeded: the same arguments give the same files.
"""

from __future__ import annotations

import json
import math
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
            predictions = []
            for k in range(samples):
                latency = float(200 + 150 * m + rng.gamma(2.0, 40.0))
                predictions.append(
                    {
                        "id": ids[k],
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
            path = root / "predictions" / model / f"{task}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions),
                encoding="utf-8",
            )
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
                base = root / "scores" / model / task / metric
                base.parent.mkdir(parents=True, exist_ok=True)
                write_score_parquet(frame, base.with_suffix(".parquet"))
                n_err = int(errors.sum())
                groups = {}
                for column, keys in (("subset", subset), ("doc_class", doc_class)):
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
                json_paths.append(base.with_suffix(".json"))
            if provenance:
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
    summary = build_summary(json_paths)
    write_summary(summary, root / "summary.parquet", root / "summary.csv")
    return root
