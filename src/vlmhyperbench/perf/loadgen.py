"""Streaming load on an OpenAI-compatible ``/v1/chat/completions``: closed and open loop.

The prepared request bodies (``messages``, ``max_tokens``, ...) are sent in order, cycled. Each
is sent with ``stream: true`` and ``stream_options: {include_usage: true}``; its
:class:`RequestRecord` holds the start, the arrival of every chunk carrying content, the end of
the stream and the output tokens (``usage.completion_tokens``, else the number of content
chunks). An HTTP error status, a transport error or a stream that ends without ``[DONE]`` is an
error record, never a latency.

**Phases.** The first ``warmup`` requests are not counted. Then ``n_requests`` are ``measured``.
The load is held at its level until the last measured request has ended: requests started after
the measured ones are ``cooldown`` (not counted either) and are cancelled once every measured
request has ended. So the measured requests all run at the level's full load, and the throughput
over the measured window (:mod:`.stats`) has no ramp-up or drain in it.

* :func:`closed_loop` - ``concurrency`` workers; each sends its next request when its previous
  answer has ended.
* :func:`open_loop` - Poisson arrivals at ``rate`` requests/s: exponential gaps from a seeded
  ``numpy.random.Generator``, each request sent at its time whatever is still outstanding.

All times are ``time.perf_counter()`` seconds (``CLOCK_MONOTONIC`` on Linux: comparable with
another process's ``perf_counter`` on the same machine).

The client is one ``aiohttp.ClientSession`` with HTTP/1.1 keep-alive and a connection per
outstanding request; lines are read with ``aiter_lines`` and only chunks starting with
``data: {`` are parsed. ``benchmarks/perf_accuracy.py`` measures its ceiling.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import numpy as np

Phase = Literal["warmup", "measured", "cooldown"]


@dataclass
class RequestRecord:
    """One request: times in ``perf_counter`` seconds; ``error`` set means no latency."""

    index: int
    phase: Phase
    start: float
    end: float | None = None
    first_token: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    output_tokens: int = 0
    response_id: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.end is not None


def _phase(index: int, warmup: int, n_requests: int) -> Phase:
    if index < warmup:
        return "warmup"
    return "measured" if index < warmup + n_requests else "cooldown"


def _prepare(body: dict[str, Any], model: str) -> bytes:
    prepared = {**body, "model": body.get("model", model), "stream": True}
    prepared["stream_options"] = {"include_usage": True}
    return json.dumps(prepared, separators=(",", ":")).encode()


def _on_chunk(record: RequestRecord, data: bytes, now: float) -> None:
    chunk = json.loads(data)
    if record.response_id is None:
        record.response_id = chunk.get("id")
    choices = chunk.get("choices") or []
    if any((c.get("delta") or {}).get("content") for c in choices):
        if record.first_token is None:
            record.first_token = now
        record.chunk_times.append(now)
    usage = chunk.get("usage")
    if usage and usage.get("completion_tokens") is not None:
        record.output_tokens = int(usage["completion_tokens"])


async def send_one(
    client: aiohttp.ClientSession, url: str, payload: bytes, index: int, phase: Phase
) -> RequestRecord:
    """Send one streaming request; every failure becomes the record's ``error``."""
    record = RequestRecord(index, phase, time.perf_counter())
    done = False
    try:
        async with client.post(url, data=payload, headers=_HEADERS) as response:
            if response.status != 200:
                text = (await response.read()).decode(errors="replace")[:200]
                record.error = f"HTTP {response.status}: {text}"
            else:
                async for line in response.content:
                    if line.startswith(b"data: {"):
                        _on_chunk(record, line[6:], time.perf_counter())
                    elif line.startswith(b"data: [DONE]"):
                        done = True
                if not done:
                    record.error = "stream ended without [DONE]"
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:300]
    record.end = time.perf_counter()
    if record.error is None and not record.output_tokens:
        record.output_tokens = len(record.chunk_times)
    return record


_HEADERS = {"content-type": "application/json"}


def make_client(max_connections: int, timeout_s: float = 600.0) -> aiohttp.ClientSession:
    """One session, a keep-alive connection per outstanding request."""
    connector = aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, read_bufsize=2**16)


class _Run:
    """What both loops share: the payloads, the phases, the records, the end of the measured."""

    def __init__(self, base_url: str, bodies: Sequence[dict[str, Any]], model: str,
                 n_requests: int, warmup: int) -> None:  # fmt: skip
        if not bodies or n_requests < 1 or warmup < 0:
            raise ValueError("need at least one body, n_requests >= 1 and warmup >= 0")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.payloads = [_prepare(body, model) for body in bodies]
        self.n_requests, self.warmup = n_requests, warmup
        self.records: list[RequestRecord] = []
        self.measured_left = n_requests
        self.measured_done = asyncio.Event()

    async def send(self, client: aiohttp.ClientSession, index: int) -> None:
        phase = _phase(index, self.warmup, self.n_requests)
        payload = self.payloads[index % len(self.payloads)]
        record = await send_one(client, self.url, payload, index, phase)
        self.records.append(record)
        if phase == "measured":
            self.measured_left -= 1
            if self.measured_left == 0:
                self.measured_done.set()

    def result(self) -> list[RequestRecord]:
        return sorted(self.records, key=lambda r: r.index)


async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def closed_loop(
    base_url: str,
    bodies: Sequence[dict[str, Any]],
    concurrency: int,
    n_requests: int,
    warmup: int = 0,
    model: str = "m",
    client: aiohttp.ClientSession | None = None,
) -> list[RequestRecord]:
    """``concurrency`` workers, each sending its next request when its previous one ended."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    run = _Run(base_url, bodies, model, n_requests, warmup)
    counter = itertools.count()
    own = client is None
    client = client or make_client(concurrency + 4)
    try:

        async def worker() -> None:
            while True:
                await run.send(client, next(counter))

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await run.measured_done.wait()
        await _cancel(workers)
    finally:
        if own:
            await client.close()
    return run.result()


def poisson_gaps(rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` inter-arrival times (s) of a Poisson process at ``rate`` requests/s."""
    if rate <= 0:
        raise ValueError("rate must be > 0")
    return rng.exponential(1.0 / rate, size=n)


async def open_loop(base_url: str, bodies: Sequence[dict[str, Any]], rate: float,
                    n_requests: int, warmup: int = 0, model: str = "m", seed: int = 0,
                    client: aiohttp.ClientSession | None = None,
                    max_outstanding: int = 1024) -> list[RequestRecord]:  # fmt: skip
    """Poisson arrivals at ``rate`` requests/s (seeded), sent whatever is still outstanding."""
    run = _Run(base_url, bodies, model, n_requests, warmup)
    rng = np.random.default_rng(seed)
    own = client is None
    client = client or make_client(max_outstanding)
    tasks: list[asyncio.Task[Any]] = []
    try:
        due = time.perf_counter()
        waiter = asyncio.create_task(run.measured_done.wait())
        for index in itertools.count():
            due += float(poisson_gaps(rate, 1, rng)[0])
            done, _ = await asyncio.wait({waiter}, timeout=max(0.0, due - time.perf_counter()))
            if done:
                break
            tasks.append(asyncio.create_task(run.send(client, index)))
        await _cancel(tasks)
    finally:
        if own:
            await client.close()
    return run.result()
