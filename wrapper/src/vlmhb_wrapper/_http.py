"""The HTTP client library: ``httpx2`` (pydantic's maintained fork, whose connection pool stays
cheap under high concurrency - the proxy's hot path) where installed, else ``httpx``. Both
have the same API."""

from __future__ import annotations

try:
    import httpx2 as httpx
except ImportError:  # Python 3.10, or an environment without it
    import httpx  # type: ignore[no-redef]

__all__ = ["httpx"]
