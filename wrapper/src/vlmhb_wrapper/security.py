"""Safe defaults: API key check, request size limit, secrets kept out of logs."""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from vlmhb_wrapper.errors import error_body

__all__ = [
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


class BodySizeLimitMiddleware:
    """Refuse HTTP bodies over ``max_bytes`` with a 413 before the app parses them.

    A declared ``Content-Length`` over the limit is refused at once; a chunked body is counted
    as it arrives. The rest of an oversized body is read and discarded (up to ``drain_bytes``)
    so the client reliably receives the 413 instead of a reset connection.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(64 << 20, 4 * max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if declared <= self.drain_bytes:
                await self._drain(receive, 0)
            await self._reject(send, declared)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                if more:
                    await self._drain(receive, len(body))
                await self._reject(send, None)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, seen: int) -> None:
        while seen <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _reject(self, send: Send, declared: int | None) -> None:
        size = f"{declared} bytes" if declared is not None else "more"
        payload = json.dumps(
            error_body(
                f"request body is too large ({size}; limit is {self.max_bytes} bytes)",
                "invalid_request_error",
                code="request_too_large",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
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
