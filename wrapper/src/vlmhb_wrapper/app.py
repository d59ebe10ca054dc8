"""FastAPI application: OpenAI-compatible routes, health, and OpenAI-shaped errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vlmhb_wrapper import __version__
from vlmhb_wrapper.backends.base import Backend, BackendState, GenerationResult
from vlmhb_wrapper.errors import (
    APIError,
    AuthenticationError,
    ModelNotFoundError,
    ServiceUnavailableError,
    error_body,
)
from vlmhb_wrapper.media import MediaLoader
from vlmhb_wrapper.prompt import GenerationDefaults, build_generation_request
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

logger = logging.getLogger(__name__)

__all__ = ["create_app"]


def create_app(
    backend: Backend,
    *,
    api_key: str | None = None,
    media_loader: MediaLoader | None = None,
    defaults: GenerationDefaults | None = None,
) -> FastAPI:
    """Build the ASGI app around ``backend``.

    The backend is loaded in the background when the app starts (lifespan), unless it is
    already ready; ``/health`` answers 503 until then. ``api_key`` (if set) is required as
    ``Authorization: Bearer <key>`` on all ``/v1`` routes; ``/health`` stays open for probes.
    """
    media = media_loader or MediaLoader()
    gen_defaults = defaults or GenerationDefaults(
        max_new_tokens_limit=backend.config.max_new_tokens_limit
    )
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
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
        title="VLMHyperBench Inference API Wrapper", version=__version__, lifespan=lifespan
    )
    app.state.backend = backend
    _install_error_handlers(app)

    async def require_api_key(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            token.strip().encode(), api_key.encode()
        ):
            raise AuthenticationError("Incorrect or missing API key", code="invalid_api_key")

    @app.get("/health")
    async def health() -> JSONResponse:
        if backend.state is BackendState.READY:
            return JSONResponse({"status": "ready"})
        detail = backend.error if backend.state is BackendState.FAILED else "model is loading"
        return JSONResponse({"status": backend.state.value, "detail": detail}, status_code=503)

    @app.get("/v1/models", dependencies=[Depends(require_api_key)])
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=backend.model_name, created=created)])

    @app.post("/v1/chat/completions", dependencies=[Depends(require_api_key)])
    async def chat_completions(body: ChatCompletionRequest) -> ChatCompletionResponse:
        arrival = time.perf_counter()
        if body.model != backend.model_name:
            raise ModelNotFoundError(
                f"The model `{body.model}` does not exist; this server serves "
                f"`{backend.model_name}`",
                param="model",
                code="model_not_found",
            )
        if not backend.ready:
            raise ServiceUnavailableError(
                f"model is not ready (status: {backend.state.value})", code="model_not_ready"
            )
        gen_request = await asyncio.to_thread(
            build_generation_request, body, media, gen_defaults, arrival=arrival
        )
        try:
            result = await backend.generate(gen_request)
        except APIError:
            raise
        except Exception as exc:
            logger.exception("generation failed")
            raise APIError(f"generation failed: {type(exc).__name__}: {exc}") from exc
        return _to_response(result, model=body.model)

    return app


def _to_response(result: GenerationResult, *, model: str) -> ChatCompletionResponse:
    t = result.timings
    generate_s = t.generate_ms / 1000.0
    perf = Performance(
        latency_ms=t.latency_ms,
        ttft_ms=t.ttft_ms,
        tpot_ms=t.tpot_ms,
        queue_ms=t.queue_ms,
        media_ms=t.media_ms,
        preprocess_ms=t.preprocess_ms,
        generate_ms=t.generate_ms,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        tokens_per_s=round(result.completion_tokens / generate_s, 3) if generate_s > 0 else 0.0,
        peak_memory_mb=result.peak_memory_mb,
        memory_source=result.memory_source,
        device=result.device,
    )
    return ChatCompletionResponse(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                message=AssistantMessage(content=result.text), finish_reason=result.finish_reason
            )
        ],
        usage=Usage(
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        ),
        performance=perf,
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.to_body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = list(exc.errors())
        messages = [f"{_loc(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors]
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
        return JSONResponse(error_body(str(exc.detail), error_type), status_code=exc.status_code)

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
