"""Snakemake entry point: results/variants.json, each model of the run with its base entry,
its server and settings, and the sweeps' axes (the report groups variants by it)."""

import json

from vlmhyperbench.runtime.io import atomic_write_json
from vlmhyperbench.runtime.logsetup import setup_logging

log = setup_logging(snakemake.log[0])
try:
    document = json.loads(snakemake.params.document)
    atomic_write_json(snakemake.output.variants, document)
    log.info("%d models, %d sweeps", len(document["variants"]), len(document["sweeps"]))
except Exception:
    log.exception("writing the variants failed")
    raise
