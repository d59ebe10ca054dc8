"""Snakemake entry point: the long summary table of every score."""

from vlmhyperbench.reporting.summary import build_summary, write_summary
from vlmhyperbench.runtime.logsetup import setup_logging

log = setup_logging(snakemake.log[0])
try:
    summary = build_summary(list(snakemake.input.scores))
    write_summary(summary, snakemake.output.parquet, snakemake.output.csv)
    log.info("summary: %d rows from %d score files", len(summary), len(snakemake.input.scores))
except Exception:
    log.exception("summarize failed")
    raise
