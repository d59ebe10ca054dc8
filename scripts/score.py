"""Snakemake entry point: one metric over one (model, task) prediction file."""

from vlmhyperbench.config import load_experiment
from vlmhyperbench.datasets.manifest import read_manifest
from vlmhyperbench.runtime.logsetup import setup_logging
from vlmhyperbench.metrics.scoring import score_predictions
from vlmhyperbench.pipeline.selection import select_samples

log = setup_logging(snakemake.log[0])
try:
    # the pair's own entries (a run block's overrides and limit)
    experiment = load_experiment(snakemake.config).for_pair(
        snakemake.wildcards.model, snakemake.wildcards.task
    )
    metric = experiment.registry.metrics[snakemake.params.metric]
    task = experiment.registry.tasks[snakemake.wildcards.task]
    result = score_predictions(
        snakemake.input.predictions,
        snakemake.input.manifest,
        metric_name=metric.name,
        implementation=metric.implementation,
        aggregate_impl=metric.aggregate,
        params=metric.params,
        higher_is_better=metric.higher_is_better,
        model=snakemake.wildcards.model,
        task=task.name,
        out_parquet=snakemake.output.per_sample,
        out_json=snakemake.output.aggregate,
        n_boot=experiment.config.scoring.bootstrap,
        seed=experiment.config.scoring.seed,
        labels=task.labels or None,
        synonyms=task.synonyms,
        samples=select_samples(task, read_manifest(snakemake.input.manifest)),
    )
    log.info(
        "%s on %s/%s: %s", metric.name, snakemake.wildcards.model, task.name, result["overall"]
    )
except Exception:
    log.exception("scoring failed")
    raise
