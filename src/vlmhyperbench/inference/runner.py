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
from typing import Any

import openai

from vlmhyperbench.config.schema import InferenceSettings, ModelEntry, TaskEntry
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.pipeline.fingerprints import effective_generation
from vlmhyperbench.inference.journal import Journal
from vlmhyperbench.inference.launcher import health
from vlmhyperbench.inference.messages import SampleInputError, build_messages
from vlmhyperbench.runtime.io import atomic_write
from vlmhyperbench.inference.prompts import TaskPrompts

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
    api_key: str = "EMPTY"
    #: sample id -> hash of what it sends (:func:`vlmhyperbench.datasets.digest.request_hash`).
    requests: dict[str, str] = field(default_factory=dict)

    def pending(self) -> list[Sample]:
        """The samples the journal has no answer for, for what they send now."""
        return [s for s in self.samples if not self.journal.done(s.id, self.requests[s.id])]


@dataclass
class RunStats:
    total: int
    already_done: int
    sent: int
    errors: int
    retries: int = 0


async def _request(
    client: openai.AsyncOpenAI, run: PredictRun, sample: Sample, generation: dict[str, Any]
) -> dict[str, Any]:
    prompt = run.prompts.render(sample)
    messages = build_messages(prompt, [run.dataset_dir / image for image in sample.images])
    started = time.perf_counter()
    completion = await client.chat.completions.create(
        model=run.served_model,
        messages=messages,
        max_tokens=generation["max_tokens"],
        temperature=generation["temperature"],
        top_p=generation.get("top_p") or openai.NOT_GIVEN,
        seed=generation.get("seed") if generation.get("seed") is not None else openai.NOT_GIVEN,
        stop=generation.get("stop") or openai.NOT_GIVEN,
        response_format=response_format(run.task, sample) or openai.NOT_GIVEN,
    )
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


async def _predict(run: PredictRun, base_url: str) -> RunStats:
    pending = run.pending()
    stats = RunStats(
        total=len(run.samples), already_done=len(run.samples) - len(pending), sent=0, errors=0
    )
    log.info(
        "%s/%s: %d samples, %d already answered (journal %s), %d to send",
        run.model.name,
        run.task.name,
        stats.total,
        stats.already_done,
        run.journal.path,
        len(pending),
    )
    if not pending:
        return stats
    settings = run.settings
    generation = effective_generation(run.model, run.task)
    semaphore = asyncio.Semaphore(settings.concurrency)
    progress_every = max(1, len(pending) // 20)
    why_stopped: list[str] = []
    tasks: list[asyncio.Task[None]] = []
    # The last sign of life from the server: a response (of any kind), or the moment a request
    # went out while none was waiting. ``in_flight``: requests sent and not yet answered.
    last_activity = time.monotonic()
    in_flight = 0

    def stop(cause: str) -> None:
        """End the run: nothing more is sent, requests in flight are abandoned (not journaled)."""
        if why_stopped:
            return
        why_stopped.append(cause)
        log.error("%s/%s: stopping: %s", run.model.name, run.task.name, cause)
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()

    async def server_health() -> tuple[bool, str]:
        return await asyncio.to_thread(
            health, base_url, min(10.0, settings.stall_timeout_s), run.api_key
        )

    async def watch_for_stall() -> None:
        """A server that sends nothing for ``stall_timeout_s`` while requests wait and fails
        its ``/health`` is hung: stop (a busy but healthy one is left to finish)."""
        nonlocal last_activity
        while True:
            await asyncio.sleep(min(1.0, settings.stall_timeout_s / 4))
            silent = time.monotonic() - last_activity
            if in_flight == 0 or silent < settings.stall_timeout_s:
                continue
            alive, detail = await server_health()
            if not alive and in_flight and not why_stopped:
                silent = time.monotonic() - last_activity
                stop(
                    f"no answer for {silent:.0f} s to {in_flight} requests in flight "
                    f"(stall_timeout_s: {settings.stall_timeout_s:g}) and its /health failed: "
                    f"{detail}"
                )
                return

    async def send(client: openai.AsyncOpenAI, sample: Sample) -> dict[str, Any] | None:
        """The sample's record, or ``None`` when the run stopped on a server failure."""
        nonlocal last_activity, in_flight
        for attempt in range(settings.max_retries + 1):
            if not in_flight:
                last_activity = time.monotonic()
            in_flight += 1
            try:
                return await _request(client, run, sample, generation)
            except (SampleInputError, ValueError) as exc:
                return _error_record(sample.id, str(exc))
            except openai.APIError as exc:
                error, cause = exc, _infrastructure_failure(exc)
                if cause is None:  # 4xx: this request is wrong (a bad image, too long…)
                    status = getattr(exc, "status_code", "?")
                    return _error_record(sample.id, f"HTTP {status}: {exc.message}")
            finally:
                in_flight -= 1
                last_activity = time.monotonic()
            alive, detail = await server_health()
            if not alive or attempt == settings.max_retries:
                tries = f"{attempt + 1} {'try' if attempt == 0 else 'tries'}"
                health_note = f"; its /health: {detail}" if not alive else ""
                stop(f"sample {sample.id}: {cause} (after {tries}){health_note}")
                return None
            delay = _backoff(attempt, error)
            stats.retries += 1
            log.warning(
                "%s/%s: sample %s: %s; retry %d of %d in %.1f s",
                run.model.name,
                run.task.name,
                sample.id,
                cause,
                attempt + 1,
                settings.max_retries,
                delay,
            )
            await asyncio.sleep(delay)
        return None

    async with openai.AsyncOpenAI(
        base_url=base_url,
        api_key=run.api_key,
        max_retries=0,  # retried here, with the cause and count in the log
        timeout=settings.request_timeout_s,
    ) as client:

        async def one(sample: Sample) -> None:
            async with semaphore:
                if why_stopped:
                    return
                record = await send(client, sample)
                if record is None:
                    return
                record["request"] = run.requests[sample.id]
                run.journal.append(record)
                stats.sent += 1
                stats.errors += record["error"] is not None
                if stats.sent % progress_every == 0 or stats.sent == len(pending):
                    log.info(
                        "%s/%s: %d/%d sent, %d errors, %d retries",
                        run.model.name,
                        run.task.name,
                        stats.sent,
                        len(pending),
                        stats.errors,
                        stats.retries,
                    )

        watchdog = asyncio.create_task(watch_for_stall())
        tasks.extend(asyncio.create_task(one(sample)) for sample in pending)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            watchdog.cancel()
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # a bug, not a server failure: let it show

    if why_stopped:
        missing = len(run.pending())
        raise PredictionAborted(
            f"{run.model.name}/{run.task.name}: the server at {base_url} stopped answering: "
            f"{why_stopped[0]}. {stats.sent} of {len(pending)} samples were answered in this "
            f"run ({stats.retries} retries) and are kept in {run.journal.path} with the "
            f"{stats.already_done} answered before; re-run to send only the missing samples "
            f"({missing})"
        )
    return stats


def write_predictions(run: PredictRun) -> None:
    """The declared output, in manifest order, written atomically from the journal."""
    with atomic_write(run.output_path) as handle:
        for sample in run.samples:
            record = run.journal.answer(sample.id, run.requests[sample.id])
            if record is None:
                raise PredictionAborted(
                    f"{run.model.name}/{run.task.name}: no answer recorded for sample "
                    f"{sample.id}; re-run to send it"
                )
            line = {key: record.get(key) for key in ("id", "prediction", "error", "performance")}
            for key in ("finish_reason", "usage", "prompt"):
                line[key] = record.get(key)
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def predict(run: PredictRun, base_url: str) -> RunStats:
    stats = asyncio.run(_predict(run, base_url))
    write_predictions(run)
    return stats
