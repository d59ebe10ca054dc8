"""Snakemake entry point: import a dataset from another layout into the manifest format."""

from pathlib import Path

from vlmhyperbench.datasets.importers import import_dataset
from vlmhyperbench.runtime.logsetup import setup_logging

log = setup_logging(snakemake.log[0])
entry = snakemake.params.entry
source = entry["source"]
try:
    samples, report = import_dataset(
        source["format"],
        snakemake.input.source,
        Path(snakemake.output.manifest).parent,
        name=entry["name"],
        version=entry["version"],
        options=source["options"],
    )
    log.info(
        "imported %d samples (%s) from %s; %d missing image(s), %d warning(s)",
        len(samples), source["format"], snakemake.input.source,
        len(report.missing_images), len(report.warnings),
    )  # fmt: skip
except Exception:
    log.exception("importing dataset %s failed", entry["name"])
    raise
