"""Seeds derived from the dataset seed, so each document and distortion has its own stream.

Deriving a seed per (document, subset) — instead of drawing everything from one shared
generator — keeps a document identical whatever other classes, counts or subsets are asked for.
"""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from the parts; stable across runs, machines and ``PYTHONHASHSEED``."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
