"""Send a task's samples to an OpenAI-compatible server concurrently, journaling every answer.

Per-sample problems (a missing image, a 4xx answer such as a corrupt image) are recorded with the
sample and the run goes on. A server that stops answering aborts the run; the journal keeps every
answer so far, and the re-run sends only the samples still missing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from vlmhyperbench.config.schema import InferenceSettings, ModelEntry, TaskEntry
from vlmhyperbench.datasets.manifest import Sample
from vlmhyperbench.fingerprints import effective_generation
from vlmhyperbench.inference.journal import Journal
from vlmhyperbench.inference.launcher import health
from vlmhyperbench.inference.messages import SampleInputError, build_messages
from vlmhyperbench.io import atomic_write
from vlmhyperbench.prompts import TaskPrompts

log = logging.getLogger("vlmhyperbench.predict")


class PredictionAborted(RuntimeError):
    """The server stopped answering; answers so far are safe in the journal."""


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


@dataclass
class RunStats:
    total: int
    already_done: int
    sent: int
    errors: int


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


def _error_record(sample_id: str, error: str, retryable: bool) -> dict[str, Any]:
    return {
        "id": sample_id,
        "prediction": None,
        "error": error,
        "retryable": retryable,
        "performance": None,
    }


async def _predict(run: PredictRun, base_url: str) -> RunStats:
    pending = [s for s in run.samples if not run.journal.done(s.id)]
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
    generation = effective_generation(run.model, run.task)
    semaphore = asyncio.Semaphore(run.settings.concurrency)
    server_dead = asyncio.Event()
    why_dead: list[str] = []

    async def dead() -> bool:
        """After a failure: is the server gone (or unhealthy: its engine died)? Then nothing
        more is sent and nothing is journaled for this sample, so a re-run sends it."""
        if server_dead.is_set():
            return True
        alive, detail = await asyncio.to_thread(health, base_url)
        if not alive:
            why_dead.append(detail)
            server_dead.set()
        return not alive

    progress_every = max(1, len(pending) // 20)

    async with openai.AsyncOpenAI(
        base_url=base_url,
        api_key=run.api_key,
        max_retries=run.settings.max_retries,
        timeout=run.settings.request_timeout_s,
    ) as client:

        async def one(sample: Sample) -> None:
            async with semaphore:
                if server_dead.is_set():
                    return
                try:
                    record = await _request(client, run, sample, generation)
                except (SampleInputError, ValueError) as exc:
                    record = _error_record(sample.id, str(exc), retryable=False)
                except openai.APIStatusError as exc:
                    # 4xx: this request is wrong (bad image, too long…) — final for this sample.
                    # 5xx from a server whose health check fails (a dead or hung engine behind
                    # the wrapper): the run stops, as when the server itself is gone.
                    if exc.status_code >= 500 and await dead():
                        return
                    retryable = exc.status_code >= 500 or exc.status_code == 429
                    record = _error_record(
                        sample.id, f"HTTP {exc.status_code}: {exc.message}", retryable
                    )
                except (openai.APIConnectionError, openai.APITimeoutError) as exc:
                    if await dead():
                        return
                    record = _error_record(
                        sample.id, f"{type(exc).__name__}: {exc}", retryable=True
                    )
                run.journal.append(record)
                stats.sent += 1
                stats.errors += record["error"] is not None
                if stats.sent % progress_every == 0 or stats.sent == len(pending):
                    log.info(
                        "%s/%s: %d/%d sent, %d errors",
                        run.model.name,
                        run.task.name,
                        stats.sent,
                        len(pending),
                        stats.errors,
                    )

        await asyncio.gather(*(one(sample) for sample in pending))

    if server_dead.is_set():
        raise PredictionAborted(
            f"{run.model.name}/{run.task.name}: the server at {base_url} stopped answering after "
            f"{stats.sent} of {len(pending)} samples ({why_dead[0] if why_dead else 'no health'})"
            f"; their answers are in {run.journal.path}; re-run to send only the missing samples"
        )
    return stats


def write_predictions(run: PredictRun) -> None:
    """The declared output, in manifest order, written atomically from the journal."""
    with atomic_write(run.output_path) as handle:
        for sample in run.samples:
            record = run.journal.records.get(sample.id)
            if record is None:
                record = _error_record(sample.id, "no answer recorded", retryable=True)
            line = {key: record.get(key) for key in ("id", "prediction", "error", "performance")}
            for key in ("finish_reason", "usage", "prompt"):
                line[key] = record.get(key)
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def predict(run: PredictRun, base_url: str) -> RunStats:
    stats = asyncio.run(_predict(run, base_url))
    write_predictions(run)
    return stats
