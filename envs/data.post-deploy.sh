#!/usr/bin/env bash
# Run by Snakemake once, inside the new conda env (--sdm conda): installs this project (editable,
# so the env follows the checkout; its dependencies are pinned in the YAML beside this file).
# VLMHB_SOURCE is the repository root, set by rules/common.smk.
set -euo pipefail
: "${VLMHB_SOURCE:?VLMHB_SOURCE is set by the workflow (rules/common.smk)}"
python -m pip install --no-deps -e "$VLMHB_SOURCE"
