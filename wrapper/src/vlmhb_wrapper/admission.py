"""Admission control: how many chat requests are generated at once.

``max_concurrent_requests`` (``--max-concurrent-requests``): one wrapper serves all tasks of a
model, each client with its own concurrency, so the server caps how many chat requests are
generated at once. A request takes a slot after it was validated and its images were checked
(refusals never take one), right before the backend is called, and holds it until its answer
is finished, it failed, or its client went away; the others wait in FIFO order, and that wait
is part of the ``queue_ms`` they report. While waiting or generating, a request whose client
disconnects is cancelled (HTTP 499 in the request counter) and frees its slot.

Without a limit every request is admitted at once (and no disconnect is watched); either way
an admitted request counts in ``vlmhb_requests_in_flight`` until its slot is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import Response

from vlmhb_wrapper.errors import APIError
from vlmhb_wrapper.prometheus import WrapperMetrics

__all__ = ["Admission", "ClientGoneError", "Slot"]


class Slot:
    """One admitted request's place: counted in flight from its creation until :meth:`release`
    (which may be called any number of times; it acts once)."""

    def __init__(
        self, waited_s: float, metrics: WrapperMetrics, free: Callable[[], None] | None
    ) -> None:
        #: Seconds the request waited for its slot (part of its ``queue_ms``).
        self.waited_s = waited_s
        self._metrics = metrics
        self._free = free
        self._released = False
        metrics.in_flight.inc(1)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._metrics.in_flight.inc(-1)
        if self._free is not None:
            self._free()


class Admission:
    """At most ``limit`` chat requests generated at once (None: no limit); the others wait
    for a slot in FIFO order."""

    def __init__(self, limit: int | None, metrics: WrapperMetrics) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"max_concurrent_requests must be >= 1, got {limit}")
        self._metrics = metrics
        self._slots: asyncio.Semaphore | None = None
        if limit is not None:
            self._slots = asyncio.Semaphore(limit)  # FIFO since Python 3.11.1
            metrics.max_concurrent.set(limit)

    async def run(
        self, request: Request, generate: Callable[[Slot], Awaitable[Response]]
    ) -> Response:
        """``generate(slot)`` once a slot is free. The slot is released here if ``generate``
        raises; otherwise by whoever ``generate`` handed it to (a full answer before it
        returns, a streamed one when its response closes)."""
        if self._slots is None:
            # No limit: no disconnect watcher.
            return await _holding(Slot(0.0, self._metrics, None), generate)
        async with _cancel_on_disconnect(request):
            waited = await self._wait_for_slot(self._slots)
            return await _holding(Slot(waited, self._metrics, self._slots.release), generate)

    async def _wait_for_slot(self, slots: asyncio.Semaphore) -> float:
        """Take a slot; returns the seconds waited (counted in ``vlmhb_requests_waiting``)."""
        if not slots.locked():
            await slots.acquire()
            return 0.0
        self._metrics.waiting.inc(1)
        started = time.perf_counter()
        try:
            await slots.acquire()
        finally:
            self._metrics.waiting.inc(-1)
        return time.perf_counter() - started


async def _holding(slot: Slot, generate: Callable[[Slot], Awaitable[Response]]) -> Response:
    try:
        return await generate(slot)
    except BaseException:
        slot.release()
        raise


class ClientGoneError(APIError):
    """The client disconnected before its answer was finished (nginx's 499; nobody reads it,
    the request counter does)."""

    status_code = 499
    error_type = "invalid_request_error"


@contextlib.asynccontextmanager
async def _cancel_on_disconnect(request: Request) -> AsyncIterator[None]:
    """Cancel the body of the ``async with`` when the client disconnects (the body of the
    request has been read: the next ASGI message is the disconnect); it then raises
    :class:`ClientGoneError`. Once the body is left, a late disconnect cancels nothing."""
    task = asyncio.current_task()
    assert task is not None
    active, gone = True, False

    async def watch() -> None:
        nonlocal gone
        try:
            while (await request.receive())["type"] != "http.disconnect":
                pass
        except Exception:  # a server whose receive fails: nothing to watch
            return
        if active:
            gone = True
            task.cancel()

    watcher = asyncio.create_task(watch(), name="vlmhb-disconnect")
    try:
        yield
    except asyncio.CancelledError:
        if gone and task.uncancel() == 0:
            raise ClientGoneError(
                "the client disconnected before the answer was finished",
                code="client_closed_request",
            ) from None
        raise
    finally:
        active = False
        watcher.cancel()
