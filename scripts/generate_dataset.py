"""Snakemake entry point: render a generated dataset from its registry entry."""

from pathlib import Path

from vlmhyperbench.datasets.demo import generate_demo_dataset
from vlmhyperbench.runtime.logsetup import setup_logging

log = setup_logging(snakemake.log[0])
entry = snakemake.params.entry
out_dir = Path(snakemake.output.manifest).parent
try:
    samples = generate_demo_dataset(
        out_dir,
        name=entry["name"],
        version=entry["version"],
        progress=lambda done, total: (
            log.info("rendered %d/%d images", done, total)
            if done == total or done % 10 == 0
            else None
        ),
        **entry["source"]["params"],
    )
    log.info("wrote %d samples to %s", len(samples), out_dir)
except Exception:
    log.exception("generating dataset %s failed", entry["name"])
    raise
