"""Snakemake entry point: build a tiny random-weight VLM folder."""

from pathlib import Path

from vlmhyperbench.models.tiny import build_tiny_model
from vlmhyperbench.runtime.logsetup import setup_logging

log = setup_logging(snakemake.log[0])
source = snakemake.params.source
try:
    path = build_tiny_model(Path(snakemake.output.model), arch=source["arch"], seed=source["seed"])
    log.info("built tiny %s model at %s", source["arch"], path)
except Exception:
    log.exception("building the tiny model failed")
    raise
