"""The experiment config's JSON schema, generated from the pydantic models (the one place the
config's rules are written), for tools that read a Snakemake workflow's
``workflow/schemas/config.schema.yaml`` (editors, the workflow catalog).

The workflow itself validates the config with the pydantic models (``rules/common.smk``), so
that each problem is a plain line naming the file its key came from; a test keeps the committed
file equal to :func:`render`. Regenerate it after changing the models::

    python -m vlmhyperbench.config.json_schema workflow/schemas/config.schema.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from vlmhyperbench.config.schema import ExperimentConfig

HEADER = (
    "# Generated from vlmhyperbench.config.schema.ExperimentConfig; do not edit. Regenerate with\n"
    "#   python -m vlmhyperbench.config.json_schema workflow/schemas/config.schema.yaml\n"
)
_FIRST = ("$schema", "description", "type", "properties", "required", "additionalProperties")


def config_schema() -> dict[str, Any]:
    """:class:`ExperimentConfig`'s JSON schema (draft 2020-12), without pydantic's titles."""
    schema = _tidy(ExperimentConfig.model_json_schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    ordered = {key: schema.pop(key) for key in _FIRST if key in schema}
    return {**ordered, **schema}  # the $defs last


def render() -> str:
    """The text of ``workflow/schemas/config.schema.yaml``."""
    body = yaml.safe_dump(config_schema(), sort_keys=False, allow_unicode=True, width=92)
    return HEADER + body


def _tidy(node: Any) -> Any:
    """Titles dropped (pydantic makes them from the names) and descriptions on one line."""
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    tidy = {}
    for key, value in node.items():
        if not isinstance(value, str):  # a schema (or a property named "title")
            tidy[key] = _tidy(value)
        elif key != "title":
            tidy[key] = " ".join(value.split()) if key == "description" else value
    return tidy


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(render(), encoding="utf-8")
