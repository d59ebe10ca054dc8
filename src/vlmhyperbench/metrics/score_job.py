"""The ``score`` stage for one (model, task, metric), without the config.

The ``score`` rule's script (``scripts/score.py``) gets what the job needs as ``params.spec``:
JSON made at parse time by :func:`score_spec` from the experiment the workflow has already
loaded (the metric entry; the task's labels, synonyms, filters and limit as its run block has
them; the bootstrap settings). So the job imports the scoring stage and the metric's own
libraries only: no config package, no validation of the registries.

A ``script:`` job rather than a ``shell:`` one running this module: Snakemake's script preamble
(importing ``snakemake.script``, unpickling the job object) measured ~0.04-0.05 s of a ~0.9 s
job (the demo's 35 score jobs both ways, side by side, on 2 busy cores: median 0.95 s vs
0.92 s), and a shell job would have to name the interpreter in ``params`` (``snakemake --lint``
asks for it there), which would re-run every score job when the environment moves.
``benchmarks/score_job.py`` measures a job beside a bare import of its libraries.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from vlmhyperbench.datasets.manifest import read_manifest
from vlmhyperbench.metrics.judge import JUDGE_METRIC, accepted_by_rule
from vlmhyperbench.pipeline.selection import select

if TYPE_CHECKING:
    from vlmhyperbench.config.schema import MetricEntry, ScoringSettings, TaskEntry

# What of a metric entry reaches the job (its description and task kinds do not score).
METRIC_KEYS = {"name", "implementation", "aggregate", "params", "higher_is_better"}


def metric_spec(metric: MetricEntry) -> dict[str, Any]:
    """What of the metric entry the job scores with. A judge metric is scored by
    :data:`~vlmhyperbench.metrics.judge.JUDGE_METRIC` from its judges' verdicts."""
    if metric.judge is None:
        return metric.model_dump(mode="json", include=METRIC_KEYS)
    judge = metric.judge
    params = {
        "judges": list(judge.models),
        "aggregate": judge.aggregate,
        "invalid": judge.invalid,
        "wrong": judge.verdict.min if judge.verdict.type == "score" else 0.0,
    }
    only_when = judge.only_when.model_dump() if judge.only_when else None
    return {"name": metric.name, "implementation": JUDGE_METRIC, "aggregate": None,
            "params": params, "higher_is_better": metric.higher_is_better,
            "only_when": only_when}  # fmt: skip


def score_spec(metric: MetricEntry, task: TaskEntry, scoring: ScoringSettings) -> str:
    """A score job's ``params.spec`` (JSON). ``task``: the entry its (model, task) pair runs
    with (a run block's overrides and limit applied)."""
    return json.dumps(
        {
            "metric": metric_spec(metric),
            "task": {
                "name": task.name,
                "labels": task.labels,
                "synonyms": task.synonyms,
                "filters": task.filters.model_dump(mode="json"),
                "limit": task.limit,
            },
            "scoring": scoring.model_dump(mode="json"),
        },
        sort_keys=True,
    )


def run_score_job(
    spec: dict[str, Any],
    *,
    model: str,
    predictions: str,
    manifest: str,
    per_sample: str,
    aggregate: str,
    judgements: dict[str, str] | None = None,
    rule_scores: str | None = None,
) -> dict[str, Any]:
    """Score the task's selection of the manifest (filters, limit) and write both outputs;
    return the aggregate JSON's dict."""
    # here, not at the top: planning imports this module for score_spec, without pandas
    from vlmhyperbench.metrics.scoring import score_predictions

    metric, task, scoring = spec["metric"], spec["task"], spec["scoring"]
    return score_predictions(
        predictions,
        manifest,
        metric_name=metric["name"],
        implementation=metric["implementation"],
        aggregate_impl=metric["aggregate"],
        params=metric["params"],
        higher_is_better=metric["higher_is_better"],
        model=model,
        task=task["name"],
        out_parquet=per_sample,
        out_json=aggregate,
        n_boot=scoring["bootstrap"],
        seed=scoring["seed"],
        labels=task["labels"] or None,
        synonyms=task["synonyms"],
        samples=select(read_manifest(manifest), task["filters"], task["limit"]),
        judgements=judgements,
        rule_accepted=_accepted(metric.get("only_when"), rule_scores),
    )


def _accepted(only_when: dict[str, Any] | None, rule_scores: str | None) -> dict[str, float]:
    """``only_when``: the rule's value of each sample it accepted (those are not judged)."""
    if only_when is None or rule_scores is None:
        return {}
    return accepted_by_rule(rule_scores, only_when["below"])
