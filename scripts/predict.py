"""Snakemake entry point: predictions of one model on one task through the wrapper."""

from pathlib import Path

from vlmhyperbench.config import load_experiment
from vlmhyperbench.inference.predict_job import run_predict_job
from vlmhyperbench.logsetup import setup_logging
from vlmhyperbench.provenance import record_predict_job

log = setup_logging(snakemake.log.main)
try:
    # the pair's own entries (a run block's overrides and limit)
    experiment = load_experiment(snakemake.config).for_pair(
        snakemake.params.model, snakemake.wildcards.task
    )
    output_path = Path(snakemake.output.predictions)
    with record_predict_job(
        experiment,
        model_name=snakemake.params.model,
        task_name=snakemake.wildcards.task,
        manifest_path=Path(snakemake.input.manifest),
        predictions_path=output_path,
        predict_fingerprint=snakemake.params.fingerprint,
        model_path=snakemake.input.get("model"),
    ):
        stats = run_predict_job(
            experiment,
            model_name=snakemake.params.model,
            task_name=snakemake.wildcards.task,
            manifest_path=Path(snakemake.input.manifest),
            output_path=output_path,
            journal_path=Path(snakemake.params.journal),
            wrapper_log_path=Path(snakemake.log.wrapper),
            fingerprint=snakemake.params.fingerprint,
            model_path=snakemake.input.get("model"),
        )
    log.info("done: %s", stats)
except Exception:
    log.exception("prediction failed")
    raise
