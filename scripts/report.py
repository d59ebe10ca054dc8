"""Snakemake entry point: the report (index.html, tables, figures, comparisons, provenance)."""

from pathlib import Path

from vlmhyperbench.reporting.build import build_report
from vlmhyperbench.runtime.logsetup import setup_logging

log = setup_logging(snakemake.log[0])
try:
    report = build_report(
        Path(snakemake.input.summary).parent,  # results/, where the inputs are
        Path(snakemake.output.index).parent,
        n_boot=int(snakemake.params.n_boot) or 1000,
        seed=int(snakemake.params.seed),
    )
    log.info(
        "wrote %d files into %s (%d gaps)", len(report.files), report.out, len(report.warnings)
    )
except Exception:
    log.exception("report failed")
    raise
