"""Snakemake entry point: one judge's verdicts on one model's answers to one task."""

from vlmhyperbench.inference.launcher import die_with_parent

die_with_parent()  # a killed run stops asking at once

from pathlib import Path  # noqa: E402

from vlmhyperbench.config import load_experiment  # noqa: E402
from vlmhyperbench.judge.job import run_judge_job  # noqa: E402
from vlmhyperbench.runtime.logsetup import setup_logging  # noqa: E402

log = setup_logging(snakemake.log[0])
try:
    wildcards = snakemake.wildcards
    log.info("judge fingerprint %s", snakemake.params.fingerprint)
    server = snakemake.input.get("server")  # none for a judge behind an endpoint
    stats = run_judge_job(
        load_experiment(snakemake.config).for_pair(wildcards.model, wildcards.task),
        wildcards.metric,
        snakemake.params.judge,
        wildcards.model,
        wildcards.task,
        manifest_path=Path(snakemake.input.manifest),
        predictions_path=Path(snakemake.input.predictions),
        output_path=Path(snakemake.output.judgements),
        journal_path=Path(snakemake.params.journal),
        server_path=Path(server) if server else None,
        rule_scores=Path(rules) if (rules := snakemake.input.get("rule_scores")) else None,
        against_predictions=(
            Path(other) if (other := snakemake.input.get("against_predictions")) else None
        ),
    )
    log.info("done: %s", stats)
except Exception:
    log.exception("judging failed")
    raise
