"""Safe defaults: API key check and request size limit (both before the body is kept or parsed),
secrets kept out of logs."""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers

from vlmhb_wrapper.errors import error_body

__all__ = [
    "APIKeyMiddleware",
    "BodySizeLimitMiddleware",
    "RedactSecretsFilter",
    "api_key_matches",
    "register_secret",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def api_key_matches(headers: Any, expected: str) -> bool:
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, compared in constant time.

    Both candidates are always compared, so the time taken does not reveal which header was
    present or how much of a key matched.
    """
    want = expected.encode()
    scheme, _, token = headers.get("authorization", "").partition(" ")
    bearer = token.strip().encode() if scheme.lower() == "bearer" else b""
    header_key = headers.get("x-api-key", "").strip().encode()
    ok_bearer = hmac.compare_digest(bearer, want)
    ok_header = hmac.compare_digest(header_key, want)
    return ok_bearer | ok_header


#: An oversized or unauthenticated body is read and dropped (never kept) up to this many bytes,
#: so the client receives the answer instead of a reset connection; past it, the connection is
#: closed without reading on.
DEFAULT_DRAIN_BYTES = 64 << 20


class APIKeyMiddleware:
    """401 for requests under ``prefix`` without the right key, before a byte of the body is
    read by the app: an unauthenticated upload is never buffered or parsed (its bytes are
    dropped as they arrive, up to ``drain_bytes``, so that the client sees the 401)."""

    def __init__(
        self,
        app: ASGIApp,
        api_key: str,
        prefix: str = "/v1",
        drain_bytes: int = DEFAULT_DRAIN_BYTES,
    ) -> None:
        self.app, self.api_key, self.prefix, self.drain_bytes = app, api_key, prefix, drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith(self.prefix)
            or api_key_matches(Headers(scope=scope), self.api_key)
        ):
            await self.app(scope, receive, send)
            return
        await _drain_within(scope, receive, self.drain_bytes)
        body = error_body(
            "Incorrect or missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
            " (the server's key is set with --api-key-env)",
            "invalid_request_error",
            code="invalid_api_key",
        )
        await send_json_error(send, 401, body, close=True)


class BodySizeLimitMiddleware:
    """Refuse HTTP bodies over ``max_bytes`` with a 413 while reading them, before the app
    parses them.

    A declared ``Content-Length`` over the limit is refused at once; any other body is counted
    chunk by chunk as it arrives and refused as soon as the count passes the limit. The rest of
    an oversized body is dropped as it arrives (up to ``drain_bytes``, never kept) so the client
    reliably receives the 413 instead of a reset connection. A body within the limit is handed
    to the app in the chunks it came in (no extra copy of the whole body).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        drain_bytes: int | None = None,
        flag: str = "--max-request-bytes",
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = (
            drain_bytes if drain_bytes is not None else max(DEFAULT_DRAIN_BYTES, 4 * max_bytes)
        )
        self.flag = flag

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _drain_within(scope, receive, self.drain_bytes)
            await self._reject(send, declared)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_bytes:
                chunks.clear()
                if more:
                    await _drain(receive, size, self.drain_bytes)
                await self._reject(send, None)
                return
            if chunk:
                chunks.append(chunk)
        chunks.reverse()  # pop() from the end hands them out in order, each freed once passed

        ended = False

        async def replay() -> Message:
            nonlocal ended
            if ended:
                return await receive()  # after the body: disconnect
            chunk = chunks.pop() if chunks else b""
            ended = not chunks
            return {"type": "http.request", "body": chunk, "more_body": not ended}

        await self.app(scope, replay, send)

    async def _reject(self, send: Send, declared: int | None) -> None:
        size = f"{declared} bytes" if declared is not None else "more"
        body = error_body(
            f"request body is too large ({size}; limit is {self.max_bytes} bytes, "
            f"set with {self.flag})",
            "invalid_request_error",
            code="request_too_large",
        )
        await send_json_error(send, 413, body, close=True)


async def _drain_within(scope: Scope, receive: Receive, drain_bytes: int) -> None:
    """Drop the request body as it arrives, unless it declares more than ``drain_bytes`` or
    the client waits for ``100 Continue`` before sending it (then it is never sent at all)."""
    headers = Headers(scope=scope)
    if headers.get("expect", "").lower() == "100-continue":
        return
    declared = _content_length(scope)
    if declared is None or 0 < declared <= drain_bytes:
        await _drain(receive, 0, drain_bytes)


async def _drain(receive: Receive, seen: int, limit: int) -> None:
    """Read and drop body chunks (nothing is kept) until the body ends or ``limit`` bytes."""
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def send_json_error(send: Send, status: int, body: dict[str, Any], close: bool) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# ------------------------------------------------------------------------------ log redaction

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()


def register_secret(value: str | None) -> None:
    """Never let ``value`` appear in a log line (handlers with :class:`RedactSecretsFilter`)."""
    if value and len(value) >= 4:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


class RedactSecretsFilter(logging.Filter):
    """Replaces registered secrets with ``***`` in log records: in the message template, in
    each argument (keeping the argument tuple, which formatters such as uvicorn's access log
    unpack), and in formatted tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SECRETS:
            return True
        if isinstance(record.msg, str):
            record.msg = _redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redact(record.exc_text)
        return True


def _redact(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str):
        return _redact(value)
    if isinstance(value, int | float | type(None)):
        return value
    text = str(value)
    redacted = _redact(text)
    return redacted if redacted != text else value
