"""Snakemake entry point: serving performance of one model on one task, on its own server."""

from vlmhyperbench.inference.launcher import die_with_parent

die_with_parent()  # a killed run stops the load at once

from pathlib import Path  # noqa: E402

from vlmhyperbench.config import load_experiment  # noqa: E402
from vlmhyperbench.perf.job import run_perf_job  # noqa: E402
from vlmhyperbench.runtime.logsetup import setup_logging  # noqa: E402

log = setup_logging(snakemake.log[0])
try:
    model, task = snakemake.wildcards.model, snakemake.wildcards.task
    result = run_perf_job(
        load_experiment(snakemake.config).for_pair(model, task),
        model_name=model,
        task_name=task,
        manifest_path=Path(snakemake.input.manifest),
        server_path=Path(snakemake.input.server),
        json_path=Path(snakemake.output.result),
        records_path=Path(snakemake.output.records),
        fingerprint=snakemake.params.fingerprint,
    )
    for ladder in result.ladders:
        log.info(
            "%s ladder: highest load meeting the SLO %s (%s)",
            ladder.kind,
            ladder.best,
            ladder.reason,
        )
except Exception:
    log.exception("perf failed")
    raise
