"""The figures of one load level, from its :class:`~.loadgen.RequestRecord` list.

Definitions (those of ``vllm bench serve``, ``vllm/benchmarks/serve.py: calculate_metrics``):

* **TTFT** (time to first token): the first chunk carrying content minus the request's start
  (vLLM's benchmark takes the first chunk with ``choices``; vLLM's server sends its role chunk
  with the first token, so the two agree there, while a server that sends the role chunk at
  once would read ~0 under vLLM's rule).
* **TPOT** (time per output token, excluding the first): ``(e2e - TTFT) / (output_tokens - 1)``
  per request with more than one output token; a request with one token has no TPOT (and
  counts as TPOT 0 for goodput, as in vLLM).
* **ITL** (inter-token latency): the gaps between successive content chunks of a request, all
  requests' gaps pooled.
* **e2e latency**: the end of the stream (``[DONE]``) minus the request's start.
* Each is summarised as mean, p50, p90, p95, p99 (``numpy.percentile``, linear), in ms, over the
  *measured* requests that succeeded.
* **error rate**: measured requests that failed (HTTP error, broken stream) / measured requests.
* **Window**: from the end of the last warm-up request (the first measured request's start
  when there is no warm-up) to the end of the last measured request; both ends are completions,
  so answers that end in batches (continuous batching, equal lengths) are counted whole. The
  load generator holds the level throughout it (warm-up before, cool-down after), so
  **requests/s** = successful requests of any phase that ended in ``(start, end]`` / its
  length, and **output tokens/s** = their output tokens / its length (vLLM divides by the whole
  run's duration, which counts ramp-up and drain: with ``n`` requests at concurrency ``c`` that
  under-reads by about ``c / n``). Use a warm-up of at least the concurrency.
* **Goodput** (vLLM's ``--goodput``): requests per second that met *every* SLO given
  (``ttft_ms``, ``tpot_ms``, ``e2e_ms``; absent ones are not checked), a request meeting one
  when its value is ``<=`` the SLO. vLLM computes ``good_completed / duration``; here it is
  requests/s × (measured successful requests that met every SLO / measured successful
  requests), the same ratio over the window defined above. Failed requests never meet an SLO
  and are not in requests/s either.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from vlmhyperbench.config.schema import SLO
from vlmhyperbench.perf.loadgen import RequestRecord

PERCENTILES = (50, 90, 95, 99)


class Summary(BaseModel):
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float

    def at(self, percentile: int) -> float:
        if percentile not in PERCENTILES:
            raise ValueError(f"percentile must be one of {PERCENTILES}, got {percentile}")
        return float(getattr(self, f"p{percentile}"))


class LevelStats(BaseModel):
    level: float
    requests: int
    completed: int
    errors: int
    error_rate: float
    window_s: float
    request_throughput: float
    output_throughput: float
    goodput: float | None
    ttft_ms: Summary | None
    tpot_ms: Summary | None
    itl_ms: Summary | None
    e2e_ms: Summary | None


def summarize(values_ms: Sequence[float]) -> Summary | None:
    if len(values_ms) == 0:
        return None
    array = np.asarray(values_ms, dtype=float)
    points = np.percentile(array, PERCENTILES)
    named = {f"p{p}": float(v) for p, v in zip(PERCENTILES, points, strict=True)}
    return Summary(mean=float(array.mean()), **named)


def e2e_s(record: RequestRecord) -> float:
    assert record.end is not None
    return record.end - record.start


def ttft_s(record: RequestRecord) -> float:
    """TTFT; an answer with no content has its TTFT at its end."""
    return (record.first_token if record.first_token is not None else record.end) - record.start  # type: ignore[operator]


def tpot_s(record: RequestRecord) -> float | None:
    if record.output_tokens <= 1:
        return None
    return (e2e_s(record) - ttft_s(record)) / (record.output_tokens - 1)


def itls_s(record: RequestRecord) -> list[float]:
    return np.diff(record.chunk_times).tolist() if len(record.chunk_times) > 1 else []


def is_good(record: RequestRecord, slo: SLO) -> bool:
    """Met every SLO given (vLLM's goodput rule); a failed request never does."""
    if not record.ok:
        return False
    checks = [(slo.ttft_ms, ttft_s(record)), (slo.tpot_ms, tpot_s(record) or 0.0),
              (slo.e2e_ms, e2e_s(record))]  # fmt: skip
    return all(limit is None or value * 1000 <= limit for limit, value in checks)


def _window(
    records: Sequence[RequestRecord], measured: Sequence[RequestRecord]
) -> tuple[float, float]:
    warmup_ends = [r.end for r in records if r.phase == "warmup" and r.end is not None]
    start = max(warmup_ends) if warmup_ends else min(r.start for r in measured)
    ends = [r.end for r in measured if r.end is not None]
    return start, max(ends) if ends else start


def level_stats(
    records: Sequence[RequestRecord], level: float, slo: SLO | None = None
) -> LevelStats:
    """The level's figures (definitions in the module docstring)."""
    measured = [r for r in records if r.phase == "measured"]
    if not measured:
        raise ValueError("no measured requests")
    good = [r for r in measured if r.ok]
    start, end = _window(records, measured)
    window = end - start
    inside = [r for r in records if r.ok and start < r.end <= end]  # type: ignore[operator]
    rps = len(inside) / window if window > 0 else 0.0
    tokens = sum(r.output_tokens for r in inside) / window if window > 0 else 0.0
    goodput = None
    if slo is not None:
        goodput = rps * sum(is_good(r, slo) for r in good) / len(good) if good else 0.0
    tpots = [t for t in (tpot_s(r) for r in good) if t is not None]
    return LevelStats(
        level=level, requests=len(measured), completed=len(good),
        errors=len(measured) - len(good), error_rate=(len(measured) - len(good)) / len(measured),
        window_s=window, request_throughput=rps, output_throughput=tokens, goodput=goodput,
        ttft_ms=summarize([ttft_s(r) * 1000 for r in good]),
        tpot_ms=summarize([t * 1000 for t in tpots]),
        itl_ms=summarize([g * 1000 for r in good for g in itls_s(r)]),
        e2e_ms=summarize([e2e_s(r) * 1000 for r in good]),
    )  # fmt: skip
