"""Snakemake entry point: the Markdown leaderboard."""

import pandas as pd

from vlmhyperbench.logsetup import setup_logging
from vlmhyperbench.reporting.leaderboard import performance_table, write_leaderboard

log = setup_logging(snakemake.log[0])
try:
    summary = pd.read_parquet(snakemake.input.summary)
    performance = performance_table(list(snakemake.input.predictions))
    write_leaderboard(summary, snakemake.output.leaderboard, performance=performance)
    log.info("wrote %s", snakemake.output.leaderboard)
except Exception:
    log.exception("report failed")
    raise
