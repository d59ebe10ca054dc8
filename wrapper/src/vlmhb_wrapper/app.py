"""FastAPI application: OpenAI-compatible routes, health, metrics and OpenAI-shaped errors.

Routes: ``POST /v1/chat/completions`` (JSON or SSE), ``GET /v1/models[/{id}]`` (API key when
configured), ``GET /health`` (200 ready / 503 loading or failed, open for probes) and
``GET /metrics`` (Prometheus text, open). Every chat answer carries a ``performance`` object
(streaming: on the last chunk).

Admission (``max_concurrent_requests``, ``--max-concurrent-requests``): one wrapper serves all
tasks of a model, each client with its own concurrency, so the server caps how many chat
requests are generated at once. A request takes a slot after it was validated and its images
were checked (refusals never take one), right before the backend is called, and holds it until
its answer is finished, it failed, or its client went away; the others wait in FIFO order, and
that wait is part of the ``queue_ms`` they report. While waiting or generating, a request whose
client disconnects is cancelled (HTTP 499 in the request counter) and frees its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vlmhb_wrapper import __version__
from vlmhb_wrapper.backends.base import (
    Backend,
    BackendState,
    GenerationRequest,
    GenerationResult,
    TextDelta,
)
from vlmhb_wrapper.errors import (
    APIError,
    AuthenticationError,
    ModelNotFoundError,
    ServiceUnavailableError,
    error_body,
)
from vlmhb_wrapper.media import MediaLoader
from vlmhb_wrapper.prometheus import WrapperMetrics
from vlmhb_wrapper.prompt import (
    GenerationDefaults,
    build_generation_request,
    check_raw_text_budget,
)
from vlmhb_wrapper.schemas import (
    AssistantMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ModelCard,
    ModelList,
    Performance,
    Usage,
)
from vlmhb_wrapper.security import APIKeyMiddleware, BodySizeLimitMiddleware, api_key_matches
from vlmhb_wrapper.telemetry import performance_of

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "ChunkWriter", "create_app"]

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
#: Requests whose image URLs total at most this many characters are checked on the event loop.
_INLINE_MEDIA_BYTES = 64 * 1024


def _image_payload(body: ChatCompletionRequest) -> int:
    total = 0
    for message in body.messages:
        if isinstance(message.content, list):
            for part in message.content:
                url = getattr(part, "image_url", None)
                if url is not None:
                    # file:// URLs are short but read a file: never inline.
                    total += len(url.url) if url.url.startswith("data:") else 1 << 30
    return total


def create_app(
    backend: Backend,
    *,
    api_key: str | None = None,
    media_loader: MediaLoader | None = None,
    defaults: GenerationDefaults | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_concurrent_requests: int | None = None,
) -> FastAPI:
    """Build the ASGI app around ``backend``.

    The backend is loaded in the background when the app starts (lifespan), unless it is
    already ready; ``/health`` answers 503 until then. ``api_key`` (if set) is required as
    ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` on all ``/v1`` routes.
    ``max_concurrent_requests`` (None: no limit) caps the chat requests generated at once.
    """
    if max_concurrent_requests is not None and max_concurrent_requests < 1:
        raise ValueError(f"max_concurrent_requests must be >= 1, got {max_concurrent_requests}")
    media = media_loader or MediaLoader()
    gen_defaults = defaults or GenerationDefaults(
        max_new_tokens_limit=backend.config.max_new_tokens_limit
    )
    created = int(time.time())
    metrics = WrapperMetrics()
    metrics.bind_backend(
        lambda: backend.state.value,
        {"version": __version__, "backend": backend.name, "model": backend.model_name},
        backend.metrics,
    )
    admission: asyncio.Semaphore | None = None
    if max_concurrent_requests is not None:
        admission = asyncio.Semaphore(max_concurrent_requests)  # FIFO since Python 3.11.1
        metrics.max_concurrent.set(max_concurrent_requests)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not backend.needs_decoded_images:
            _tune_gc_for_relaying()
        load_task = None if backend.ready else asyncio.create_task(backend.load())
        try:
            yield
        finally:
            if load_task is not None and not load_task.done():
                load_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await load_task
            await backend.close()

    app = FastAPI(
        title="VLMHyperBench Inference API Wrapper",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.backend = backend
    app.state.metrics = metrics
    _install_error_handlers(app)
    # The last added runs first: the request counter, the key (401 before the body is read),
    # the body limit (413 while reading), then the routes.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_request_bytes)
    if api_key is not None:
        app.add_middleware(APIKeyMiddleware, api_key=api_key)
    app.add_middleware(_CountRequests, metrics=metrics)

    async def require_api_key(request: Request) -> None:
        # APIKeyMiddleware has refused these before the body was read; kept as a second lock.
        if api_key is not None and not api_key_matches(request.headers, api_key):
            raise AuthenticationError(
                "Incorrect or missing API key: send `Authorization: Bearer <key>` "
                "or `X-API-Key: <key>`",
                code="invalid_api_key",
            )

    @app.get("/health")
    async def health() -> JSONResponse:
        if backend.state is BackendState.READY:
            return JSONResponse({"status": "ready"})
        body = {"status": backend.state.value, "detail": backend.health_detail()}
        return JSONResponse(body, status_code=503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models", dependencies=[Depends(require_api_key)])
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=backend.model_name, created=created)])

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(require_api_key)])
    async def get_model(model_id: str) -> ModelCard:
        if model_id != backend.model_name:
            raise _model_not_found(model_id, backend.model_name)
        return ModelCard(id=backend.model_name, created=created)

    @app.post("/v1/chat/completions", dependencies=[Depends(require_api_key)])
    async def chat_completions(request: Request) -> Response:
        raw = await request.body()
        check_raw_text_budget(raw, gen_defaults.max_request_chars)
        body = _parse_chat_request(raw)
        del raw
        arrival = time.perf_counter()
        if body.model != backend.model_name:
            raise _model_not_found(body.model, backend.model_name)
        if not backend.ready:
            raise ServiceUnavailableError(
                f"model is not ready (status: {backend.state.value}): {backend.health_detail()}",
                code="model_not_ready",
            )
        inline = not backend.needs_decoded_images and not media.allow_remote
        if inline and _image_payload(body) <= _INLINE_MEDIA_BYTES:
            # Proxied backends only check headers; for small images that is cheaper than a
            # hop to a worker thread (decoding for in-process backends always goes there).
            gen_request = build_generation_request(
                body, media, gen_defaults, backend, arrival=arrival
            )
        else:
            gen_request = await asyncio.to_thread(
                build_generation_request, body, media, gen_defaults, backend, arrival=arrival
            )
        if admission is None:
            # No limit: today's path, without a disconnect watcher.
            return await _generate(body, gen_request, 0.0)
        async with _cancel_on_disconnect(request):
            waited = 0.0
            if admission.locked():
                metrics.waiting.inc(1)
                started = time.perf_counter()
                try:
                    await admission.acquire()
                finally:
                    metrics.waiting.inc(-1)
                waited = time.perf_counter() - started
            else:
                await admission.acquire()
            return await _generate(body, gen_request, waited, admission.release)

    async def _generate(
        body: ChatCompletionRequest,
        req: GenerationRequest,
        admission_s: float,
        release_slot: Any = None,
    ) -> Response:
        """Generate with the slot held (if any): freed once, however the request ends."""
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                metrics.in_flight.inc(-1)
                if release_slot is not None:
                    release_slot()

        metrics.in_flight.inc(1)
        if not body.stream:
            try:
                return await _full_response(body, req, admission_s)
            finally:
                release()
        try:
            # From here the response's close releases the slot (end, disconnect, cancel).
            return await _stream_response(body, req, admission_s, release)
        except BaseException:
            release()
            raise

    async def _full_response(
        body: ChatCompletionRequest, req: GenerationRequest, admission_s: float
    ) -> Response:
        result: GenerationResult | None = None
        try:
            async with contextlib.aclosing(backend.stream(req)) as events:
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
        perf = _record(result, req, admission_s)
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
        body: ChatCompletionRequest, req: GenerationRequest, admission_s: float, release: Any
    ) -> Response:
        events = backend.stream(req)
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

        async def sse() -> AsyncIterator[str]:
            try:
                yield writer.role()
                event: Any = first
                while True:
                    if isinstance(event, TextDelta):
                        yield writer.content(event.text)
                    else:
                        perf = _record(event, req, admission_s)
                        yield writer.finish(event, perf)
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

        iterator = sse()
        closed = False

        async def on_close() -> None:
            # Runs however the response ends (finished, client gone, cancelled): the backend
            # stream is closed (cancelling its work), then the in-flight gauge and the admission
            # slot are settled once.
            nonlocal closed
            if closed:
                return
            closed = True
            try:
                await iterator.aclose()
                await events.aclose()
            finally:
                release()

        return _SSEResponse(iterator, on_close)

    def _record(
        result: GenerationResult, req: GenerationRequest, admission_s: float
    ) -> Performance:
        perf = performance_of(result, req, backend=backend.name, admission_s=admission_s)
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

    return app


#: Allocations between young-generation collections for relaying backends (CPython: 700).
_RELAY_GC_THRESHOLD = 20_000


def _tune_gc_for_relaying() -> None:
    """A relaying (proxy) process makes only short-lived garbage per request, yet with the
    default settings the cyclic GC cost ~15% of its CPU: young collections every 700
    allocations (each traversing the objects of requests still in flight) and full ones over
    the whole startup heap (FastAPI, pydantic, Pillow: ~50k objects). Freeze the startup heap
    (never collected, never traversed again) and collect the young generation less often, so
    most request objects are freed by reference counting before a collection sees them."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_RELAY_GC_THRESHOLD, older, oldest)


class _SSEResponse(StreamingResponse):
    def __init__(self, content: AsyncIterator[str], on_close: Any) -> None:
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


class _CountRequests:
    """Pure ASGI middleware: ``vlmhb_requests_total{route,status,stream}``."""

    def __init__(self, app: Any, metrics: WrapperMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen: dict[str, str] = {"status": "500", "stream": "false"}

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = str(message["status"])
                for name, value in message.get("headers", ()):
                    if name == b"content-type" and value.startswith(b"text/event-stream"):
                        seen["stream"] = "true"
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.inc(1, route, seen["status"], seen["stream"])


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


def _parse_chat_request(raw: bytes) -> ChatCompletionRequest:
    """Validate the JSON body straight from its bytes (pydantic's parser: no intermediate
    document string or dict, so a large body costs about its own size once more)."""
    try:
        return ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _model_not_found(requested: str, served: str) -> ModelNotFoundError:
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


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.to_body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = list(exc.errors())
        messages = [f"{_loc(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:10]]
        param = _loc(errors[0].get("loc", ())) if errors else None
        return JSONResponse(
            error_body(
                "invalid request: " + "; ".join(messages),
                "invalid_request_error",
                param=param,
                code="validation_error",
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = "not_found" if exc.status_code == 404 else None
        return JSONResponse(
            error_body(str(exc.detail), error_type, code=code), status_code=exc.status_code
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return JSONResponse(
            error_body(f"internal error: {type(exc).__name__}: {exc}", "server_error"),
            status_code=500,
        )


def _loc(loc: Any) -> str:
    # Drop the leading "body" FastAPI adds: OpenAI reports plain parameter paths.
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"
