"""The dynamic batcher: the queue between the event loop and the generation thread, which
picks the requests that run together in one ``generate()`` (:class:`Batcher`)."""

from __future__ import annotations

import threading
import time
from collections import deque

from vlmhb_wrapper.backends.hf.collate import CollatePlan
from vlmhb_wrapper.backends.hf.rows import Row
from vlmhb_wrapper.errors import ServiceUnavailableError

__all__ = ["FILL_WAIT_FACTOR", "Batcher"]

#: A batch that is not full waits at most this many times ``batch_wait_ms`` for requests that
#: are still being preprocessed.
FILL_WAIT_FACTOR = 4


class Batcher:
    """The queue between the event loop and the generation thread."""

    def __init__(self, max_batch: int, wait_s: float) -> None:
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._queue: deque[Row] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._preprocessing = 0  # accepted requests not yet in the queue
        self._last_batch_end = 0.0

    def __len__(self) -> int:
        return len(self._queue)

    def expect(self, row: Row) -> None:
        """``row`` is being preprocessed: a batch that is not full may wait for it."""
        with self._cv:
            row.expected = True
            self._preprocessing += 1

    def _arrived(self, row: Row) -> None:
        if row.expected:
            row.expected = False
            self._preprocessing -= 1

    def abandon(self, row: Row) -> None:
        """``row`` will not come (its preprocessing failed or was cancelled)."""
        with self._cv:
            self._arrived(row)
            self._cv.notify()

    def submit(self, row: Row) -> None:
        with self._cv:
            self._arrived(row)
            if self._closed:
                raise ServiceUnavailableError("the server is shutting down", code="shutting_down")
            row.enqueued = time.perf_counter()
            self._queue.append(row)
            self._cv.notify()

    def close(self) -> list[Row]:
        with self._cv:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        return left

    def batch_done(self) -> None:
        with self._cv:
            self._last_batch_end = time.perf_counter()

    def next_batch(self) -> tuple[list[Row], CollatePlan] | None:
        """The next batch to generate, ``None`` once closed. A batch that is not full waits a
        little for more rows; if every row it had is cancelled meanwhile (their clients left),
        it waits for new ones."""
        with self._cv:
            while True:
                while self._queue and self._queue[0].cancelled:
                    self._queue.popleft()
                if self._closed:
                    return None
                if not self._queue:
                    self._cv.wait()
                    continue
                picked = self._fill()
                if picked is not None:
                    chosen = set(map(id, picked[0]))
                    self._queue = deque(
                        r for r in self._queue if id(r) not in chosen and not r.cancelled
                    )
                    return picked

    def _fill(self) -> tuple[list[Row], CollatePlan] | None:
        """Wait (the lock held by the caller) until the batch is full or its time is up."""
        start = max(self._queue[0].enqueued, self._last_batch_end)
        deadline = start + self.wait_s
        fill_deadline = start + self.wait_s * FILL_WAIT_FACTOR
        while True:
            if all(row.cancelled for row in self._queue):
                return None
            batch, plan = self._select()
            if len(batch) >= self.max_batch or self.max_batch == 1 or self.wait_s <= 0:
                return batch, plan
            now = time.perf_counter()
            until = fill_deadline if self._preprocessing > 0 else deadline
            if now >= until or self._closed:
                return batch, plan
            self._cv.wait(until - now)

    def _select(self) -> tuple[list[Row], CollatePlan]:
        rows = [r for r in self._queue if not r.cancelled]
        plan = CollatePlan(rows[0].inputs)
        batch = [rows[0]]
        for row in rows[1:]:
            if len(batch) >= self.max_batch:
                break
            if plan.accepts(row.inputs):
                plan.add(row.inputs)
                batch.append(row)
        return batch, plan
