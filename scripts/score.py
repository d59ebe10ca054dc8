"""Snakemake entry point: one metric over one (model, task) prediction file."""

from vlmhyperbench.config import load_experiment
from vlmhyperbench.logsetup import setup_logging
from vlmhyperbench.metrics.scoring import score_predictions

log = setup_logging(snakemake.log[0])
try:
    experiment = load_experiment(snakemake.config)
    metric = experiment.registry.metrics[snakemake.params.metric]
    task = experiment.registry.tasks[snakemake.wildcards.task]
    params = dict(metric.params)
    if task.kind == "classification":
        params.setdefault("labels", task.labels)
        params.setdefault("synonyms", task.synonyms)
    result = score_predictions(
        snakemake.input.predictions,
        snakemake.input.manifest,
        metric_name=metric.name,
        implementation=metric.implementation,
        aggregate_impl=metric.aggregate,
        params=params,
        higher_is_better=metric.higher_is_better,
        model=snakemake.wildcards.model,
        task=task.name,
        out_parquet=snakemake.output.per_sample,
        out_json=snakemake.output.aggregate,
        n_boot=experiment.config.scoring.bootstrap,
        seed=experiment.config.scoring.seed,
    )
    log.info(
        "%s on %s/%s: %s", metric.name, snakemake.wildcards.model, task.name, result["overall"]
    )
except Exception:
    log.exception("scoring failed")
    raise
