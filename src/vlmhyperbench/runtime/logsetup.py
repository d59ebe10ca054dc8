"""Logging for the ``script:`` entry points: to the rule's ``log:`` file and to stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup_logging(log_path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, encoding="utf-8"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    # Keep per-request HTTP chatter out of the job logs.
    for noisy in ("httpx", "httpcore", "aiohttp", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger("vlmhyperbench")
