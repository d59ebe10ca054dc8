"""FastAPI application: the OpenAI-compatible routes, health, metrics and OpenAI-shaped errors.

A thin router: each route parses its request, delegates and returns. Routes:
``POST /v1/chat/completions`` (JSON or SSE; served by
:class:`~vlmhb_wrapper.serving_chat.ServingChat`, admitted by
:class:`~vlmhb_wrapper.admission.Admission`), ``GET /v1/models[/{id}]`` (API key when
configured), ``GET /health`` (200 ready / 503 loading or failed, open for probes) and
``GET /metrics`` (Prometheus text, open). Every chat answer carries a ``performance`` object
(streaming: on the last chunk).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vlmhb_wrapper import __version__
from vlmhb_wrapper.admission import Admission
from vlmhb_wrapper.backends.base import Backend, BackendState
from vlmhb_wrapper.errors import APIError, AuthenticationError, error_body
from vlmhb_wrapper.media import MediaLoader
from vlmhb_wrapper.prometheus import WrapperMetrics
from vlmhb_wrapper.prompt import GenerationDefaults, check_raw_text_budget
from vlmhb_wrapper.schemas import ChatCompletionRequest, ModelCard, ModelList
from vlmhb_wrapper.security import APIKeyMiddleware, BodySizeLimitMiddleware, api_key_matches
from vlmhb_wrapper.serving_chat import ServingChat, model_not_found

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "create_app"]

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


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
    metrics = WrapperMetrics()
    admission = Admission(max_concurrent_requests, metrics)
    metrics.bind_backend(
        lambda: backend.state.value,
        {"version": __version__, "backend": backend.name, "model": backend.model_name},
        backend.metrics,
    )
    app = FastAPI(
        title="VLMHyperBench Inference API Wrapper",
        version=__version__,
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.backend = backend
    app.state.metrics = metrics
    app.state.api_key = api_key
    app.state.created = int(time.time())
    app.state.serving_chat = ServingChat(
        backend,
        media_loader or MediaLoader(),
        defaults or GenerationDefaults(max_new_tokens_limit=backend.config.max_new_tokens_limit),
        metrics,
        admission,
    )
    app.include_router(router)
    _install_error_handlers(app)
    # The last added runs first: the request counter, the key (401 before the body is read),
    # the body limit (413 while reading), then the routes.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_request_bytes)
    if api_key is not None:
        app.add_middleware(APIKeyMiddleware, api_key=api_key)
    app.add_middleware(_CountRequests, metrics=metrics)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the backend in the background (unless it is ready); close it at shutdown."""
    backend: Backend = app.state.backend
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


# -------------------------------------------------------------------------------- routes


async def require_api_key(request: Request) -> None:
    # APIKeyMiddleware has refused these before the body was read; kept as a second lock.
    api_key = request.app.state.api_key
    if api_key is not None and not api_key_matches(request.headers, api_key):
        raise AuthenticationError(
            "Incorrect or missing API key: send `Authorization: Bearer <key>` "
            "or `X-API-Key: <key>`",
            code="invalid_api_key",
        )


router = APIRouter()


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    backend: Backend = request.app.state.backend
    if backend.state is BackendState.READY:
        return JSONResponse({"status": "ready"})
    body = {"status": backend.state.value, "detail": backend.health_detail()}
    return JSONResponse(body, status_code=503)


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    metrics: WrapperMetrics = request.app.state.metrics
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/v1/models", dependencies=[Depends(require_api_key)])
async def list_models(request: Request) -> ModelList:
    return ModelList(data=[_model_card(request)])


@router.get("/v1/models/{model_id:path}", dependencies=[Depends(require_api_key)])
async def get_model(model_id: str, request: Request) -> ModelCard:
    served = request.app.state.backend.model_name
    if model_id != served:
        raise model_not_found(model_id, served)
    return _model_card(request)


@router.post("/v1/chat/completions", dependencies=[Depends(require_api_key)])
async def chat_completions(request: Request) -> Response:
    serving: ServingChat = request.app.state.serving_chat
    raw = await request.body()
    check_raw_text_budget(raw, serving.defaults.max_request_chars)
    body = _parse_chat_request(raw)
    del raw
    return await serving.create_chat_completion(body, request)


def _model_card(request: Request) -> ModelCard:
    return ModelCard(id=request.app.state.backend.model_name, created=request.app.state.created)


def _parse_chat_request(raw: bytes) -> ChatCompletionRequest:
    """Validate the JSON body straight from its bytes (pydantic's parser: no intermediate
    document string or dict, so a large body costs about its own size once more)."""
    try:
        return ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


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


def _install_error_handlers(app: FastAPI) -> None:
    """Every error as OpenAI's ``{"error": {...}}`` body."""
    app.add_exception_handler(APIError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(_: Request, exc: APIError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status_code)


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


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
    code = "not_found" if exc.status_code == 404 else None
    return JSONResponse(
        error_body(str(exc.detail), error_type, code=code), status_code=exc.status_code
    )


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
