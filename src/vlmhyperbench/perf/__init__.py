"""Serving performance under load (issue 26): a load generator, per-level statistics and the
search for the highest load that meets an SLO.

* :mod:`.loadgen` - closed-loop (fixed concurrency) and open-loop (Poisson arrivals) streaming
  load on an OpenAI-compatible ``/v1/chat/completions``; one :class:`RequestRecord` a request.
* :mod:`.stats` - throughput, TTFT/TPOT/ITL/e2e percentiles, error rate and goodput of a level.
* :mod:`.search` - the ladder, then bisection, for the highest load that meets the SLO.
"""

from vlmhyperbench.perf.loadgen import RequestRecord, closed_loop, open_loop, poisson_gaps
from vlmhyperbench.perf.search import SearchResult, find_max_load, meets_slo
from vlmhyperbench.perf.stats import SLO, LevelStats, Summary, level_stats

__all__ = [
    "SLO",
    "LevelStats",
    "RequestRecord",
    "SearchResult",
    "Summary",
    "closed_loop",
    "find_max_load",
    "level_stats",
    "meets_slo",
    "open_loop",
    "poisson_gaps",
]
