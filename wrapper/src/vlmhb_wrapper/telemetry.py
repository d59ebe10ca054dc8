"""Torch-free telemetry helpers (timing conversions, process memory)."""

from __future__ import annotations

import sys

__all__ = ["ms", "process_peak_rss_mb"]


def ms(seconds: float) -> float:
    """Seconds -> milliseconds, rounded to microseconds for stable JSON."""
    return round(seconds * 1000.0, 3)


def process_peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Uses ``getrusage`` (a true high-water mark, kept by the kernel) where available, falling
    back to the current RSS from ``psutil``. It is process-wide and monotonic: on CPU the
    model's own memory dominates it, so it is comparable across requests but not a per-request
    delta.
    """
    try:
        import resource
    except ImportError:  # Windows
        resource = None  # type: ignore[assignment]
    if resource is not None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes.
        return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
    import psutil

    return psutil.Process().memory_info().rss / (1024 * 1024)
