"""One request inside the generation pipeline (:class:`Row`), and the hand-over of events
from the generation thread to the event loop each request waits on (:func:`dispatch`)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import torch

from vlmhb_wrapper.backends.base import GenerationRequest

__all__ = ["Row", "RowEvent", "dispatch"]


class Row:
    """One request inside the generation pipeline (shared by the loop and the worker)."""

    __slots__ = (
        "batch_size",
        "cancelled",
        "count",
        "enqueued",
        "expected",
        "gen_start",
        "generator",
        "gpu_peak_mb",
        "inputs",
        "loop",
        "preprocess_s",
        "prompt_tokens",
        "queue",
        "queue_s",
        "request",
    )

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, Any, float]] = asyncio.Queue()
        self.inputs: dict[str, torch.Tensor] = {}
        self.prompt_tokens = 0
        self.cancelled = False
        self.count = 0
        self.enqueued = 0.0
        self.expected = False  # counted by the batcher while it is being preprocessed
        self.queue_s = 0.0
        self.preprocess_s = 0.0
        self.gen_start = 0.0
        self.batch_size = 0
        self.generator: torch.Generator | None = None
        self.gpu_peak_mb: float | None = None


#: ``(row, kind, value, time)``: kind ``tok`` (a token id), ``end`` (a finish reason) or
#: ``err`` (an exception to raise in the request).
RowEvent = tuple[Row, str, Any, float]


def _deliver(events: list[RowEvent]) -> None:
    for row, kind, value, stamp in events:
        row.queue.put_nowait((kind, value, stamp))


def dispatch(events: list[RowEvent]) -> None:
    """Hand events from the worker thread to the rows' event loops (one call per loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[RowEvent]] = {}
    for event in events:
        by_loop.setdefault(event[0].loop, []).append(event)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop (shutdown): nobody listens
            loop.call_soon_threadsafe(_deliver, items)
