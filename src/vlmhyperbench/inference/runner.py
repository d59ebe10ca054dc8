"""Send a task's samples to an OpenAI-compatible server concurrently, journaling every answer.

What a prediction line may hold: the model's answer, or a per-sample input problem - an image
that is missing, unreadable or not a file, or a 4xx the server gave this one request (a corrupt
image, a prompt too long). Nothing else. An infrastructure failure - a 5xx, 429 or 408, a
refused, dropped or timed-out connection - is retried with backoff (``max_retries``; each retry
and its cause in the job's log); if the server's ``/health`` fails too, or the retries run out,
the run stops: samples in flight are abandoned, nothing is journaled for them, and
:class:`PredictionAborted` names the model, the server and the cause. A server that sends
nothing for ``stall_timeout_s`` while requests wait, and fails its ``/health``, is hung: the run
stops the same way, after about ``stall_timeout_s``, not ``request_timeout_s`` x retries.

The journal keeps every answer so far, keyed on what each sample sent; the re-run sends exactly
the samples with no answer for what they send now.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import openai

from vlmhyperbench.config.schema import InferenceSettings, ModelEntry, TaskEntry
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.inference.journal import Journal
from vlmhyperbench.inference.launcher import health
from vlmhyperbench.inference.messages import SampleInputError, build_messages
from vlmhyperbench.inference.prompts import RenderedPrompt, TaskPrompts
from vlmhyperbench.pipeline.fingerprints import effective_generation
from vlmhyperbench.runtime.io import atomic_write

log = logging.getLogger("vlmhyperbench.predict")

#: Statuses that say nothing about the request itself: the server (or what is behind it) failed.
TRANSIENT_STATUS = {408, 409, 429}


class PredictionAborted(RuntimeError):
    """The server failed or stopped answering; answers so far are safe in the journal."""


@dataclass
class PredictRun:
    model: ModelEntry
    task: TaskEntry
    prompts: TaskPrompts
    samples: list[Sample]
    dataset_dir: Path
    journal: Journal
    output_path: Path
    settings: InferenceSettings
    served_model: str
    #: the model's name in the run matrix where it is a sweep's variant (for messages)
    variant: str = ""
    api_key: str = "EMPTY"
    #: sample id -> hash of what it sends (:func:`vlmhyperbench.datasets.digest.request_hash`).
    requests: dict[str, str] = field(default_factory=dict)
    #: Fields sent with every request besides the standard ones (the openai client's
    #: ``extra_body``), e.g. ``{"mm_processor_kwargs": {"max_pixels": 401408}}``: settings the
    #: backend takes per request, so variants differing only in them share one server.
    extra_body: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``model/task`` as the run names them."""
        return f"{self.variant or self.model.name}/{self.task.name}"

    def pending(self) -> list[Sample]:
        """The samples the journal has no answer for, for what they send now."""
        return [s for s in self.samples if not self.journal.done(s.id, self.requests[s.id])]

    def request_key(self, sample: Sample) -> str:
        """What the sample sends, as the journal keys its record."""
        return self.requests[sample.id]

    def error_record(self, sample: Sample, error: str) -> dict[str, Any]:
        return _error_record(sample.id, error)

    async def request(self, client: openai.AsyncOpenAI, sample: Sample) -> dict[str, Any]:
        """The model's answer to the sample (raises the client's errors)."""
        return await _request(client, self, sample, effective_generation(self.model, self.task))


class RequestRun(Protocol):
    """What :class:`Sender` sends for: items with an ``id`` (a prediction run's samples, a
    judge run's judged answers), a journal, and how one item is asked."""

    settings: InferenceSettings
    api_key: str
    journal: Journal

    @property
    def label(self) -> str: ...

    def pending(self) -> list[Any]: ...

    def request_key(self, item: Any) -> str: ...

    def error_record(self, item: Any, error: str) -> dict[str, Any]: ...

    async def request(self, client: openai.AsyncOpenAI, item: Any) -> dict[str, Any]: ...


@dataclass
class RunStats:
    total: int
    already_done: int
    sent: int
    errors: int
    retries: int = 0


def request_body(
    task: TaskEntry,
    prompts: TaskPrompts,
    dataset_dir: Path,
    sample: Sample,
    generation: dict[str, Any],
    served_model: str,
) -> tuple[dict[str, Any], RenderedPrompt]:
    """The sample's ``/v1/chat/completions`` body (OpenAI's own fields; a backend's extra ones
    are added by the caller) and the prompt it rendered. The predict and perf stages send it."""
    prompt = prompts.render(sample)
    body: dict[str, Any] = {
        "model": served_model,
        "messages": build_messages(
            prompt,
            [dataset_dir / image for image in sample.images],
            images_first=task.prompt.image_position == "before_text",
        ),
        "max_tokens": generation["max_tokens"],
        "temperature": generation["temperature"],
    }
    optional = {
        "top_p": generation.get("top_p") or None,
        "seed": generation.get("seed"),
        "stop": generation.get("stop") or None,
        "response_format": response_format(task, sample),
    }
    body.update((key, value) for key, value in optional.items() if value is not None)
    return body, prompt


async def _request(
    client: openai.AsyncOpenAI, run: PredictRun, sample: Sample, generation: dict[str, Any]
) -> dict[str, Any]:
    body, prompt = request_body(
        run.task, run.prompts, run.dataset_dir, sample, generation, run.served_model
    )
    started = time.perf_counter()
    completion = await client.chat.completions.create(**body, extra_body=run.extra_body or None)
    wall_ms = (time.perf_counter() - started) * 1000
    extra = completion.model_extra or {}
    performance = dict(extra.get("performance") or {})
    performance["client_latency_ms"] = round(wall_ms, 3)
    choice = completion.choices[0]
    return {
        "id": sample.id,
        "prediction": choice.message.content or "",
        "error": None,
        "finish_reason": choice.finish_reason,
        "performance": performance,
        "usage": completion.usage.model_dump() if completion.usage else None,
        "prompt": {"system": prompt.system, "user": prompt.user},
    }


def response_format(task: TaskEntry, sample: Sample) -> dict[str, Any] | None:
    """For an extraction task with ``structured_output``: a JSON schema of string fields, sent
    as OpenAI ``response_format`` so backends with structured output enforce it."""
    if task.kind != "extraction" or not task.structured_output:
        return None
    fields = task.fields or sample.meta.get("fields", [])
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "fields",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {name: {"type": "string"} for name in fields},
                "required": list(fields),
                "additionalProperties": False,
            },
        },
    }


def _error_record(sample_id: str, error: str) -> dict[str, Any]:
    return {"id": sample_id, "prediction": None, "error": error, "performance": None}


def _infrastructure_failure(exc: Exception) -> str | None:
    """The cause, when ``exc`` is the server's failure rather than this request's fault."""
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in TRANSIENT_STATUS:
            return f"HTTP {exc.status_code}: {exc.message}"
        return None
    if isinstance(exc, openai.APITimeoutError):
        return "the request timed out"
    if isinstance(exc, openai.APIConnectionError):
        return f"connection failed: {exc.__cause__ or exc}"
    return None


def _backoff(attempt: int, exc: openai.APIError) -> float:
    """Seconds before retry ``attempt + 1``: 0.5, 1, 2… (at most 8), or the server's
    ``Retry-After`` (a rate limit), up to a minute."""
    response = getattr(exc, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    try:
        return min(60.0, max(0.0, float(retry_after)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return min(8.0, 0.5 * 2**attempt)


class _ServerFailure(Exception):
    """A request failed for the server's reasons, not the sample's: retry it or stop."""

    def __init__(self, error: openai.APIError, cause: str) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause


class Sender:
    """Sends one run's pending items to the server at ``base_url``, ``concurrency`` at a time,
    and journals each record as it arrives.

    A server failure is retried with backoff; when the retries run out or the server's
    ``/health`` fails, or the server is silent for ``stall_timeout_s`` with requests waiting and
    fails its ``/health``, the run stops: nothing more is sent, requests in flight are abandoned
    (not journaled), and :attr:`why_stopped` says why (the first cause wins).
    """

    def __init__(self, run: RequestRun, base_url: str, pending: list[Any], stats: RunStats) -> None:
        self.run = run
        self.base_url = base_url
        self.settings = run.settings
        self.pending = pending
        self.stats = stats
        self.progress_every = max(1, len(pending) // 20)
        self.why_stopped: str | None = None
        self.tasks: list[asyncio.Task[None]] = []
        # The last sign of life from the server: a response (of any kind), or the moment a
        # request went out while none was waiting. ``in_flight``: sent and not yet answered.
        self.last_activity = time.monotonic()
        self.in_flight = 0

    @property
    def label(self) -> str:
        return self.run.label

    async def send_all(self) -> None:
        """Send every pending sample; returns when all are journaled or the run has stopped."""
        semaphore = asyncio.Semaphore(self.settings.concurrency)
        async with openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.run.api_key,
            max_retries=0,  # retried here, with the cause and count in the log
            timeout=self.settings.request_timeout_s,
        ) as client:
            watchdog = asyncio.create_task(self.watch_for_stall())
            self.tasks.extend(
                asyncio.create_task(self.answer(client, semaphore, sample))
                for sample in self.pending
            )
            try:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            finally:
                watchdog.cancel()
            for task in self.tasks:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # a bug, not a server failure: let it show

    async def answer(
        self, client: openai.AsyncOpenAI, semaphore: asyncio.Semaphore, sample: Any
    ) -> None:
        """Send one sample when a slot is free, and journal its record."""
        async with semaphore:
            if self.why_stopped is not None:
                return
            record = await self.send(client, sample)
            if record is not None:
                self.record_answer(sample, record)

    async def send(self, client: openai.AsyncOpenAI, sample: Any) -> dict[str, Any] | None:
        """The sample's record, or ``None`` when the run stopped on a server failure."""
        for attempt in range(self.settings.max_retries + 1):
            try:
                return await self.request(client, sample)
            except _ServerFailure as failure:
                alive, detail = await self.server_health()
                if not alive or attempt == self.settings.max_retries:
                    tries = f"{attempt + 1} {'try' if attempt == 0 else 'tries'}"
                    health_note = f"; its /health: {detail}" if not alive else ""
                    self.stop(f"sample {sample.id}: {failure.cause} (after {tries}){health_note}")
                    return None
                await self.wait_to_retry(sample, attempt, failure)
        return None

    async def request(self, client: openai.AsyncOpenAI, sample: Any) -> dict[str, Any]:
        """One request: the model's answer or the sample's own error (a bad image, a 4xx);
        raises :class:`_ServerFailure` when the server failed."""
        if not self.in_flight:
            self.last_activity = time.monotonic()
        self.in_flight += 1
        try:
            return await self.run.request(client, sample)
        except (SampleInputError, ValueError) as exc:
            return self.run.error_record(sample, str(exc))
        except openai.APIError as exc:
            cause = _infrastructure_failure(exc)
            if cause is None:  # 4xx: this request is wrong (a bad image, too long…)
                status = getattr(exc, "status_code", "?")
                return self.run.error_record(sample, f"HTTP {status}: {exc.message}")
            raise _ServerFailure(exc, cause) from exc
        finally:
            self.in_flight -= 1
            self.last_activity = time.monotonic()

    async def wait_to_retry(self, sample: Any, attempt: int, failure: _ServerFailure) -> None:
        delay = _backoff(attempt, failure.error)
        self.stats.retries += 1
        log.warning(
            "%s: sample %s: %s; retry %d of %d in %.1f s",
            self.label,
            sample.id,
            failure.cause,
            attempt + 1,
            self.settings.max_retries,
            delay,
        )
        await asyncio.sleep(delay)

    async def server_health(self) -> tuple[bool, str]:
        timeout_s = min(10.0, self.settings.stall_timeout_s)
        return await asyncio.to_thread(health, self.base_url, timeout_s, self.run.api_key)

    async def watch_for_stall(self) -> None:
        """A server that sends nothing for ``stall_timeout_s`` while requests wait and fails
        its ``/health`` is hung: stop (a busy but healthy one is left to finish)."""
        stall_timeout_s = self.settings.stall_timeout_s
        while True:
            await asyncio.sleep(min(1.0, stall_timeout_s / 4))
            if self.in_flight == 0 or self.silent_s() < stall_timeout_s:
                continue
            alive, detail = await self.server_health()
            if not alive and self.in_flight and self.why_stopped is None:
                self.stop(
                    f"no answer for {self.silent_s():.0f} s to {self.in_flight} requests in "
                    f"flight (stall_timeout_s: {stall_timeout_s:g}) and its /health failed: "
                    f"{detail}"
                )
                return

    def silent_s(self) -> float:
        return time.monotonic() - self.last_activity

    def stop(self, cause: str) -> None:
        """End the run: nothing more is sent, requests in flight are abandoned (not journaled)."""
        if self.why_stopped is not None:
            return
        self.why_stopped = cause
        log.error("%s: stopping: %s", self.label, cause)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    def record_answer(self, sample: Any, record: dict[str, Any]) -> None:
        """Journal the sample's record (under what it sent) and count it; show progress."""
        record["request"] = self.run.request_key(sample)
        self.run.journal.append(record)
        self.stats.sent += 1
        self.stats.errors += record["error"] is not None
        if self.stats.sent % self.progress_every == 0 or self.stats.sent == len(self.pending):
            log.info(
                "%s: %d/%d sent, %d errors, %d retries",
                self.label,
                self.stats.sent,
                len(self.pending),
                self.stats.errors,
                self.stats.retries,
            )

    def aborted(self) -> str:
        """Why the job ends after a stop: the run, the server, the cause, and what the journal
        keeps."""
        stats, run = self.stats, self.run
        return (
            f"{self.label}: the server at {self.base_url} stopped answering: "
            f"{self.why_stopped}. {stats.sent} of {len(self.pending)} samples were answered in "
            f"this run ({stats.retries} retries) and are kept in {run.journal.path} with the "
            f"{stats.already_done} answered before; re-run to send only the missing samples "
            f"({len(run.pending())})"
        )


async def _predict(run: PredictRun, base_url: str) -> RunStats:
    pending = run.pending()
    stats = RunStats(
        total=len(run.samples), already_done=len(run.samples) - len(pending), sent=0, errors=0
    )
    log.info(
        "%s: %d samples, %d already answered (journal %s), %d to send",
        run.label,
        stats.total,
        stats.already_done,
        run.journal.path,
        len(pending),
    )
    if not pending:
        return stats
    sender = Sender(run, base_url, pending, stats)
    await sender.send_all()
    if sender.why_stopped is not None:
        raise PredictionAborted(sender.aborted())
    return stats


def write_predictions(run: PredictRun) -> None:
    """The declared output, in manifest order, written atomically from the journal."""
    with atomic_write(run.output_path) as handle:
        for sample in run.samples:
            record = run.journal.answer(sample.id, run.requests[sample.id])
            if record is None:
                raise PredictionAborted(
                    f"{run.label}: no answer recorded for sample {sample.id}; re-run to send it"
                )
            line = {key: record.get(key) for key in ("id", "prediction", "error", "performance")}
            for key in ("finish_reason", "usage", "prompt"):
                line[key] = record.get(key)
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def predict(run: PredictRun, base_url: str) -> RunStats:
    stats = asyncio.run(_predict(run, base_url))
    write_predictions(run)
    return stats
