"""Snakemake entry point: one metric over one (model, task) prediction file.

Everything the job needs comes as ``params.spec``, made at parse time by the plan: the job
loads no config (see :mod:`vlmhyperbench.metrics.score_job`).
"""

import json

from vlmhyperbench.metrics.score_job import run_score_job
from vlmhyperbench.runtime.logsetup import setup_logging

log = setup_logging(snakemake.log[0])
try:
    spec = json.loads(snakemake.params.spec)
    # a judge metric: its judges' judgements files, in the order of its judges
    files = getattr(snakemake.input, "judgements", None)
    judges = spec["metric"]["params"].get("judges") if files is not None else None
    judgements = dict(zip(judges, files, strict=True)) if judges else None
    result = run_score_job(
        spec,
        model=snakemake.wildcards.model,
        predictions=snakemake.input.predictions,
        manifest=snakemake.input.manifest,
        per_sample=snakemake.output.per_sample,
        aggregate=snakemake.output.aggregate,
        judgements=judgements,
        rule_scores=getattr(snakemake.input, "rule_scores", None),
    )
    log.info(
        "%s on %s/%s: %s",
        spec["metric"]["name"],
        snakemake.wildcards.model,
        spec["task"]["name"],
        result["overall"],
    )
except Exception:
    log.exception("scoring failed")
    raise
