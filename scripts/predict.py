"""Snakemake entry point: predictions of one model on one task, through its shared server."""

from vlmhyperbench.inference.launcher import die_with_parent

die_with_parent()  # a killed run stops sending at once

from pathlib import Path  # noqa: E402

from vlmhyperbench.config import load_experiment  # noqa: E402
from vlmhyperbench.inference.predict_job import run_predict_job  # noqa: E402
from vlmhyperbench.inference.server import model_info  # noqa: E402
from vlmhyperbench.pipeline.provenance import record_predict_job  # noqa: E402
from vlmhyperbench.runtime.logsetup import setup_logging  # noqa: E402

log = setup_logging(snakemake.log[0])
try:
    # the pair's own entries (a run block's overrides and limit)
    experiment = load_experiment(snakemake.config).for_pair(
        snakemake.params.model, snakemake.wildcards.task
    )
    output_path = Path(snakemake.output.predictions)
    server = snakemake.input.get("server")  # none for a model behind an endpoint
    with record_predict_job(
        experiment,
        model_name=snakemake.params.model,
        task_name=snakemake.wildcards.task,
        manifest_path=Path(snakemake.input.manifest),
        predictions_path=output_path,
        predict_fingerprint=snakemake.params.fingerprint,
        # where the serve job found the model (a built tiny model, an s3:// model's copy)
        model_path=model_info(server).get("model_path") if server else None,
    ):
        stats = run_predict_job(
            experiment,
            model_name=snakemake.params.model,
            task_name=snakemake.wildcards.task,
            manifest_path=Path(snakemake.input.manifest),
            output_path=output_path,
            journal_path=Path(snakemake.params.journal),
            fingerprint=snakemake.params.fingerprint,
            server_path=Path(server) if server else None,
        )
    log.info("done: %s", stats)
except Exception:
    log.exception("prediction failed")
    raise
