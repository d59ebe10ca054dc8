"""Chat completions: from a parsed request to a full (JSON) or streamed (SSE) answer.

:class:`ServingChat` checks the model and its readiness, builds the backend's request
(validation and images: on the event loop for small proxied ones, else on a worker thread),
lets :class:`~vlmhb_wrapper.admission.Admission` admit it, and turns the backend's events into
the answer. Every answer carries a ``performance`` object (streaming: on the last chunk), and
each finished answer is recorded in the Prometheus metrics (latency, TTFT, queue, tokens,
batch size, peak memory).

A streamed answer waits for the backend's first event before it answers: errors that come
before any output keep their HTTP status; a later one ends the stream with an OpenAI error
event. However the stream ends (finished, client gone, cancelled) the backend's stream is
closed and the request's slot released, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from vlmhb_wrapper.admission import Admission, Slot
from vlmhb_wrapper.backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    StreamEvent,
    TextDelta,
)
from vlmhb_wrapper.errors import (
    APIError,
    ModelNotFoundError,
    ServiceUnavailableError,
    error_body,
)
from vlmhb_wrapper.media import MediaLoader
from vlmhb_wrapper.prometheus import WrapperMetrics
from vlmhb_wrapper.prompt import GenerationDefaults, build_generation_request
from vlmhb_wrapper.schemas import (
    AssistantMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    Performance,
    Usage,
)
from vlmhb_wrapper.telemetry import performance_of

logger = logging.getLogger(__name__)

__all__ = ["ChunkWriter", "ServingChat", "model_not_found"]

#: Requests whose image URLs total at most this many characters are checked on the event loop.
_INLINE_MEDIA_BYTES = 64 * 1024


class ServingChat:
    """Serves ``POST /v1/chat/completions`` for one backend."""

    def __init__(
        self,
        backend: Backend,
        media: MediaLoader,
        defaults: GenerationDefaults,
        metrics: WrapperMetrics,
        admission: Admission,
    ) -> None:
        self.backend = backend
        self.media = media
        self.defaults = defaults
        self.metrics = metrics
        self.admission = admission

    async def create_chat_completion(
        self, body: ChatCompletionRequest, raw_request: Request
    ) -> Response:
        arrival = time.perf_counter()
        self._check_servable(body.model)
        gen_request = await self._build_request(body, arrival)
        return await self.admission.run(
            raw_request, lambda slot: self._generate(body, gen_request, slot)
        )

    def _check_servable(self, model: str) -> None:
        backend = self.backend
        if model != backend.model_name:
            raise model_not_found(model, backend.model_name)
        if not backend.ready:
            raise ServiceUnavailableError(
                f"model is not ready (status: {backend.state.value}): {backend.health_detail()}",
                code="model_not_ready",
            )

    async def _build_request(
        self, body: ChatCompletionRequest, arrival: float
    ) -> GenerationRequest:
        args = (body, self.media, self.defaults, self.backend)
        inline = not self.backend.needs_decoded_images and not self.media.allow_remote
        if inline and _image_payload(body) <= _INLINE_MEDIA_BYTES:
            # Proxied backends only check headers; for small images that is cheaper than a
            # hop to a worker thread (decoding for in-process backends always goes there).
            return build_generation_request(*args, arrival=arrival)
        return await asyncio.to_thread(build_generation_request, *args, arrival=arrival)

    async def _generate(
        self, body: ChatCompletionRequest, req: GenerationRequest, slot: Slot
    ) -> Response:
        """The answer, with the slot held: a full one releases it before it returns, a
        streamed one when its response closes (end, disconnect, cancel)."""
        if not body.stream:
            try:
                return await self._full_response(body, req, slot.waited_s)
            finally:
                slot.release()
        return await self._stream_response(body, req, slot)

    async def _full_response(
        self, body: ChatCompletionRequest, req: GenerationRequest, admission_s: float
    ) -> Response:
        result: GenerationResult | None = None
        try:
            async with contextlib.aclosing(self.backend.stream(req)) as events:
                async for event in events:
                    if isinstance(event, GenerationResult):
                        result = event
        except APIError:
            raise
        except Exception as exc:
            logger.exception("generation failed")
            raise APIError(f"generation failed: {type(exc).__name__}: {exc}") from exc
        if result is None:
            raise APIError("the backend ended without a result")
        perf = self._record(result, req, admission_s)
        response = ChatCompletionResponse(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=body.model,
            choices=[
                Choice(
                    message=AssistantMessage(content=result.text),
                    finish_reason=result.finish_reason,
                )
            ],
            usage=_usage(result),
            performance=perf,
        )
        return Response(response.model_dump_json(), media_type="application/json")

    async def _stream_response(
        self, body: ChatCompletionRequest, req: GenerationRequest, slot: Slot
    ) -> Response:
        events = self.backend.stream(req)
        # Wait for the first event before answering: errors that come before any output
        # (a prompt over the context, an upstream 4xx, a dead engine) keep their HTTP status.
        try:
            first = await anext(events)
        except BaseException as exc:
            await events.aclose()
            if isinstance(exc, APIError) or not isinstance(exc, Exception):
                raise
            logger.exception("generation failed")
            raise APIError(f"generation failed: {type(exc).__name__}: {exc}") from exc
        writer = ChunkWriter(
            f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), body.model, body.include_usage
        )
        answer = _StreamedAnswer(
            events, first, writer, lambda result: self._record(result, req, slot.waited_s), slot
        )
        return _SSEResponse(answer.lines, answer.close)

    def _record(
        self, result: GenerationResult, req: GenerationRequest, admission_s: float
    ) -> Performance:
        """The answer's ``performance``, also recorded in the Prometheus metrics."""
        perf = performance_of(result, req, backend=self.backend.name, admission_s=admission_s)
        metrics = self.metrics
        metrics.latency.observe(perf.latency_ms / 1000.0)
        if perf.ttft_ms is not None:
            metrics.ttft.observe(perf.ttft_ms / 1000.0)
        metrics.queue.observe(perf.queue_ms / 1000.0)
        metrics.prompt_tokens.inc(perf.prompt_tokens)
        metrics.completion_tokens.inc(perf.completion_tokens)
        if perf.batch_size is not None:
            metrics.batch_size.observe(perf.batch_size)
        if perf.peak_memory_mb is not None:
            metrics.peak_memory.set(perf.peak_memory_mb, perf.memory_source)
        return perf


class _StreamedAnswer:
    """One streamed answer: its SSE lines from the backend's events, and its close."""

    def __init__(
        self,
        events: AsyncGenerator[StreamEvent, None],
        first: StreamEvent,
        writer: ChunkWriter,
        record: Callable[[GenerationResult], Performance],
        slot: Slot,
    ) -> None:
        self._events = events
        self._first = first
        self._writer = writer
        self._record = record
        self._slot = slot
        self._closed = False
        self.lines = self._lines()

    async def _lines(self) -> AsyncGenerator[str, None]:
        writer, events = self._writer, self._events
        try:
            yield writer.role()
            event: Any = self._first
            while True:
                if isinstance(event, TextDelta):
                    yield writer.content(event.text)
                else:
                    yield writer.finish(event, self._record(event))
                    yield "data: [DONE]\n\n"
                    return
                event = await anext(events)
        except APIError as exc:
            logger.warning("stream aborted: %s", exc.message)
            yield writer.error(exc.to_body())
        except Exception as exc:
            logger.exception("stream failed")
            message = f"generation failed: {type(exc).__name__}: {exc}"
            yield writer.error(error_body(message, "server_error"))
        finally:
            await events.aclose()

    async def close(self) -> None:
        """Runs however the response ends (finished, client gone, cancelled): the backend
        stream is closed (cancelling its work), then the in-flight gauge and the admission
        slot are settled once."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.lines.aclose()
            await self._events.aclose()
        finally:
            self._slot.release()


class _SSEResponse(StreamingResponse):
    def __init__(
        self, content: AsyncIterator[str], on_close: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()


class ChunkWriter:
    """The SSE ``data:`` lines of one streamed answer, in OpenAI's exact shape.

    Built with ``json.dumps`` on plain dicts (content chunks are the hot path); the tests
    validate every chunk against :class:`~vlmhb_wrapper.schemas.ChatCompletionChunk`. With
    ``include_usage`` every chunk has ``"usage": null`` and one extra last chunk has
    ``"choices": []``, the usage and the performance; without it, the chunk that carries the
    ``finish_reason`` also carries the performance.
    """

    def __init__(self, chunk_id: str, created: int, model: str, include_usage: bool) -> None:
        self.include_usage = include_usage
        self._head = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        head = json.dumps(self._head, ensure_ascii=False, separators=(",", ":"))[:-1]
        self._content_prefix = "data: " + head + ',"choices":[{"index":0,"delta":{"content":'
        usage = ',"usage":null' if include_usage else ""
        self._content_suffix = '},"logprobs":null,"finish_reason":null}]' + usage + "}\n\n"

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk: dict[str, Any] = {**self._head, "choices": choices}
        if self.include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return "data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":")) + "\n\n"

    @staticmethod
    def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def role(self) -> str:
        return self._event([self._choice({"role": "assistant", "content": ""})])

    def content(self, text: str) -> str:
        return self._content_prefix + json.dumps(text, ensure_ascii=False) + self._content_suffix

    def finish(self, result: GenerationResult, perf: Performance) -> str:
        finish = [self._choice({}, result.finish_reason)]
        if not self.include_usage:
            return self._event(finish, performance=perf.model_dump())
        last = self._event([], usage=_usage(result).model_dump(), performance=perf.model_dump())
        return self._event(finish) + last

    @staticmethod
    def error(body: dict[str, Any]) -> str:
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def model_not_found(requested: str, served: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"The model `{requested}` does not exist; this server serves `{served}`",
        param="model",
        code="model_not_found",
    )


def _usage(result: GenerationResult) -> Usage:
    return Usage(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
    )


def _image_payload(body: ChatCompletionRequest) -> int:
    """Characters of the request's ``data:`` image URLs (any other URL counts as too many)."""
    total = 0
    for message in body.messages:
        if isinstance(message.content, list):
            for part in message.content:
                url = getattr(part, "image_url", None)
                if url is not None:
                    # file:// URLs are short but read a file: never inline.
                    total += len(url.url) if url.url.startswith("data:") else 1 << 30
    return total
