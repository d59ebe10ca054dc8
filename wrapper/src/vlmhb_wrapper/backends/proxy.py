"""Proxying to an OpenAI-compatible upstream, and the ``openai`` backend built on it.

The upstream is always asked to *stream* (with ``stream_options.include_usage``), whatever the
client asked for: the wrapper then measures TTFT itself (the first chunk with non-empty
``delta.content``), and takes the token counts from the upstream's usage. Images reach the
upstream as ``data:`` URLs that the wrapper has already checked (limits, decompression bombs);
``file://`` and (when enabled) ``http(s)`` images are inlined, so the upstream needs no access
to the wrapper's files or network.

The client is aiohttp's (its HTTP parser is C): relaying ~35 SSE events per answer is the
proxy's hot path, and a pure-Python HTTP stack spent about half of the wrapper's CPU there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from vlmhb_wrapper.backends.base import (
    Backend,
    BackendConfig,
    BackendState,
    GenerationRequest,
    GenerationResult,
    MemoryReading,
    StreamEvent,
    TextDelta,
)
from vlmhb_wrapper.errors import APIError, ServiceUnavailableError

logger = logging.getLogger(__name__)

__all__ = ["OpenAIBackend", "OpenAIUpstream"]

#: Keys of a standard chat.completion.chunk; anything else is the upstream's own telemetry.
_STANDARD_CHUNK_KEYS = {
    "id",
    "object",
    "created",
    "model",
    "choices",
    "usage",
    "system_fingerprint",
    "service_tier",
    "obfuscation",
    "prompt_logprobs",
    "kv_transfer_params",
}

FailureHook = Callable[[str], Awaitable[APIError]]


async def _default_failure(reason: str) -> APIError:
    return ServiceUnavailableError(
        f"the upstream is unavailable: {reason}", code="upstream_unavailable"
    )


class OpenAIUpstream:
    """A streaming client for one OpenAI-compatible ``/v1`` base URL.

    The session is opened on first use, inside the event loop that serves the requests.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        on_failure: FailureHook | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Like a read timeout: the longest silence between two reads, not the answer's time.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._on_failure = on_failure or _default_failure

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
                trust_env=False,  # a proxy from the environment must not see local traffic/keys
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def probe(self, path: str) -> int:
        """The HTTP status of ``GET path``; ``ConnectionError`` when the upstream is not there."""
        try:
            async with self._client().get(self.base_url + path) as response:
                await response.read()
                return response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ConnectionError(f"cannot reach {self.base_url}: {exc}") from exc

    def body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.openai_messages(),
            "stream": True,
            "stream_options": {"include_usage": True},
            request.max_tokens_field: request.max_new_tokens,
            "temperature": request.temperature,
        }
        if request.top_p != 1.0:
            body["top_p"] = request.top_p
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.response_format is not None:
            body["response_format"] = request.response_format
        if request.presence_penalty:
            body["presence_penalty"] = request.presence_penalty
        if request.frequency_penalty:
            body["frequency_penalty"] = request.frequency_penalty
        # vLLM/SGLang extensions: only when used (OpenAI itself rejects unknown fields).
        if request.ignore_eos:
            body["ignore_eos"] = True
        if request.min_tokens:
            body["min_tokens"] = request.min_tokens
        if request.mm_processor_kwargs:  # only on backends that declare they take it (vllm)
            body["mm_processor_kwargs"] = request.mm_processor_kwargs
        return body

    async def stream(
        self, request: GenerationRequest, *, queue_s: float = 0.0
    ) -> AsyncIterator[StreamEvent]:
        body = self.body(request)
        parts: list[str] = []
        first: float | None = None
        last: float | None = None
        content_chunks = 0
        finish: str | None = None
        usage: dict[str, Any] | None = None
        upstream: dict[str, Any] = {}
        done = False
        sent = time.perf_counter()
        try:
            url = self.base_url + "/chat/completions"
            async with self._client().post(url, json=body) as response:
                if response.status != 200:
                    raise _relay(response.status, await response.read())
                # SSE parsed from raw reads (not line by line): events that arrive together are
                # handled together, and their text goes on as one delta.
                pending = b""
                async for raw in response.content.iter_any():
                    pending += raw.replace(b"\r\n", b"\n")
                    *events, pending = pending.split(b"\n\n")
                    texts: list[str] = []
                    for event in events:
                        for line in event.split(b"\n"):
                            if not line.startswith(b"data:"):
                                continue
                            data = line[5:].strip()
                            if data == b"[DONE]":
                                done = True  # read on to the end: keeps the connection reusable
                                continue
                            chunk = json.loads(data)
                            if chunk.get("error"):
                                raise _relay(_error_status(chunk["error"]), data)
                            for choice in chunk.get("choices") or ():
                                content = (choice.get("delta") or {}).get("content")
                                if content:
                                    content_chunks += 1
                                    texts.append(content)
                                if choice.get("finish_reason"):
                                    finish = choice["finish_reason"]
                            if chunk.get("usage"):
                                usage = chunk["usage"]
                            for key, value in chunk.items():
                                if key not in _STANDARD_CHUNK_KEYS and value is not None:
                                    upstream[key] = value
                    if texts:
                        last = time.perf_counter()
                        if first is None:
                            first = last
                        text = "".join(texts)
                        parts.append(text)
                        yield TextDelta(text)
        except APIError:
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise await self._on_failure(f"{type(exc).__name__}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise await self._on_failure(f"the upstream sent malformed JSON: {exc}") from exc
        if not done:
            raise await self._on_failure("the upstream closed the stream before [DONE]")
        finished = time.perf_counter()
        if usage is None:
            upstream["usage_estimated"] = True  # the upstream ignored include_usage
            usage = {"prompt_tokens": 0, "completion_tokens": content_chunks}
        yield GenerationResult(
            text="".join(parts),
            finish_reason=finish or "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            gen_start=sent,
            finished=finished,
            first_token=first,
            last_token=last,
            queue_s=queue_s,
            upstream=upstream or None,
        )


def _error_status(error: Any) -> int:
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and 400 <= code < 600 else 500


def _relay(status: int, raw: bytes) -> APIError:
    """The upstream's error as ours: same status and fields (its 401/403 become 502: the
    *wrapper's* credentials were refused, not the client's)."""
    message, error_type, param, code = raw.decode(errors="replace")[:2000], None, None, None
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error") if isinstance(payload.get("error"), dict) else payload
        message = str(error.get("message") or message)
        error_type = error.get("type")
        param = error.get("param")
        code = error.get("code") if isinstance(error.get("code"), str) else None
    if status in (401, 403):
        return APIError(
            f"the upstream refused the wrapper's credentials (HTTP {status}): {message}",
            status_code=502,
            error_type="upstream_error",
            code="upstream_auth_failed",
        )
    if status >= 500:
        return APIError(
            f"upstream error (HTTP {status}): {message}",
            status_code=503 if status == 503 else 502,
            error_type="upstream_error",
            code=code or "upstream_error",
        )
    return APIError(
        message,
        status_code=status,
        error_type=error_type or "invalid_request_error",
        param=param,
        code=code,
    )


class OpenAIBackend(Backend):
    """Any external OpenAI-compatible endpoint (``--upstream-base-url``; the key is read from
    the environment variable named by ``--upstream-api-key-env``). ``--model`` is the model
    name at the upstream; clients use ``--served-model-name`` (default: the same).

    A watchdog asks the upstream for ``/models`` every ``engine_health_interval_s`` (each
    check waits as long): after ``engine_health_failures`` failures in a row (no answer, or a
    5xx) the upstream is down - ``/health`` and new requests answer 503 naming it and the cause,
    and the connections of requests in flight are dropped, which ends them with that 503 rather
    than after the 600 s read timeout. When the upstream answers again, the backend is ready
    again (the upstream is not ours to restart).
    """

    name = "openai"
    supports_structured_output = True
    supports_penalties = True
    needs_decoded_images = False

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        if not config.upstream_base_url:
            raise ValueError("the openai backend needs --upstream-base-url")
        self._upstream: OpenAIUpstream | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._down: str | None = None  # why the watchdog found the upstream down

    @property
    def device(self) -> str:
        return "remote"

    async def _load(self) -> None:
        start = time.perf_counter()
        cfg = self.config
        self._upstream = OpenAIUpstream(
            str(cfg.upstream_base_url),
            model=cfg.upstream_model or cfg.model,
            api_key=cfg.upstream_api_key,
            timeout_s=cfg.upstream_timeout_s,
            on_failure=self._failure,
        )
        status = await self._upstream.probe("/models")
        if status in (401, 403):
            raise PermissionError(f"{cfg.upstream_base_url} refused the API key (HTTP {status})")
        # Other statuses: some compatible servers have no /models; requests will tell.
        # The same wording as the in-process backends: "loaded <model> (...) in <s>s".
        logger.info(
            "loaded %s (openai upstream %s, model %s; /models: HTTP %d) in %.2fs",
            cfg.model_name,
            cfg.upstream_base_url,
            self._upstream.model,
            status,
            time.perf_counter() - start,
        )
        if cfg.engine_health_interval_s > 0:
            self._watchdog = asyncio.create_task(self._watch_upstream(), name="vlmhb-upstream")

    async def _failure(self, reason: str) -> APIError:
        where = self.config.upstream_base_url
        message = self._down or f"the upstream {where} is unavailable: {reason}"
        return ServiceUnavailableError(message, code="upstream_unavailable")

    async def _check(self, timeout_s: float) -> str | None:
        """``None`` when the upstream answers ``/models`` (any status below 500), else why not."""
        assert self._upstream is not None
        try:
            status = await asyncio.wait_for(self._upstream.probe("/models"), timeout_s)
        except TimeoutError:
            return f"no answer within {timeout_s:g} s"
        except ConnectionError as exc:
            return str(exc)
        return f"HTTP {status}" if status >= 500 else None

    async def _watch_upstream(self) -> None:
        interval = self.config.engine_health_interval_s
        limit = self.config.engine_health_failures
        where = f"{self.config.upstream_base_url}/models"
        failures = 0
        while True:
            await asyncio.sleep(interval)
            problem = await self._check(interval)
            if problem is None:
                failures = 0
                if self._down is not None and self.state is BackendState.FAILED:
                    logger.warning("the upstream answers again: ready")
                    self._down, self.state, self.error = None, BackendState.READY, None
                continue
            failures += 1
            if failures < limit or self._down is not None or not self.ready:
                continue
            self._down = (
                f"the upstream {self.config.upstream_base_url} stopped answering: {failures} "
                f"checks of {where} in a row failed (one every {interval:g} s; last: {problem})"
            )
            logger.error("%s", self._down)
            self.mark_failed(self._down)
            assert self._upstream is not None
            await self._upstream.aclose()  # requests in flight end now, with the 503 above

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        if not self.ready or self._upstream is None:
            raise ServiceUnavailableError(f"model is not ready (state: {self.state.value})")
        async for event in self._upstream.stream(request):
            if isinstance(event, GenerationResult):
                event.memory = MemoryReading(None, "unavailable")
                event.device = self.device
            yield event

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._upstream is not None:
            await self._upstream.aclose()
