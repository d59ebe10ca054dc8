"""A minimal HTTP/1.1 client for the proxy's hot path: ``POST`` a JSON body to a plain
``http://`` upstream over kept-alive connections and read the (usually chunked, streamed)
answer.

Why not httpx: per proxied request its generic stack (URL merging, auth/redirect hooks, h11
events, anyio locks and cancel scopes per read, a pool that rescans all connections) cost
about as much CPU as the rest of the wrapper together. Here a request is one socket write
(head and body together) and the answer is parsed by ``httptools`` (uvicorn's own C parser).
Only what the proxy needs: no TLS (``https`` upstreams keep using httpx), no redirects, no
compression, no proxies from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

__all__ = ["H1Client", "H1Error", "H1Response"]


@contextlib.asynccontextmanager
async def _timeout_compat(seconds: float) -> AsyncIterator[None]:  # pragma: no cover - 3.10
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def cancel() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = loop.call_later(seconds, cancel)
    try:
        yield
    except asyncio.CancelledError:
        if fired:
            raise TimeoutError from None
        raise
    finally:
        handle.cancel()


#: ``asyncio.timeout`` (3.11+: no extra task per read, unlike ``wait_for``).
_timeout = getattr(asyncio, "timeout", None) or _timeout_compat


class H1Error(Exception):
    """The connection failed: refused, reset, timed out, closed early or not HTTP."""


class _StaleConnection(H1Error):
    """A kept-alive connection that the server had closed: nothing was answered."""


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class H1Response:
    """One answer: ``status_code``, then the body through :meth:`aiter_bytes` or :meth:`aread`."""

    def __init__(self, conn: _Connection, timeout_s: float) -> None:
        self._conn = conn
        self._timeout_s = timeout_s
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the end is in the data, not at EOF
        self.status_code = 0
        self.keep_alive = False
        self.complete = False
        self.received = False

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"content-length" or (
            lower == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self.status_code = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    async def _read(self) -> None:
        try:
            async with _timeout(self._timeout_s):
                data = await self._conn.reader.read(65536)
        except TimeoutError:
            raise H1Error(f"no data from the upstream for {self._timeout_s:g} s") from None
        except OSError as exc:
            if not self.received:
                raise _StaleConnection(f"{type(exc).__name__}: {exc}") from exc
            raise H1Error(f"{type(exc).__name__}: {exc}") from exc
        if not data:
            if self._headers_done and not self._framed:
                self.complete, self.keep_alive = True, False  # the body ends at EOF
                return
            if not self.received:
                raise _StaleConnection("the server closed the connection without answering")
            raise H1Error("the server closed the connection in the middle of an answer")
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise H1Error(f"malformed HTTP answer: {exc}") from None

    async def _start(self) -> None:
        while not self._headers_done:
            await self._read()

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Body data as it arrives (what one socket read brought, de-chunked)."""
        while True:
            if self._body:
                data = b"".join(self._body) if len(self._body) > 1 else self._body[0]
                self._body.clear()
                yield data
            if self.complete:
                return
            await self._read()

    async def aread(self) -> bytes:
        while not self.complete:
            await self._read()
        data = b"".join(self._body)
        self._body.clear()
        return data


class H1Client:
    """Kept-alive connections to one ``http://host:port/prefix``; fixed extra headers."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        max_idle: int = 512,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"H1Client needs an http:// URL, got {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        fixed = {"Host": parts.netloc, "Accept": "*/*", **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._max_idle = max_idle
        self._idle: list[_Connection] = []
        self._closed = False

    async def _connect(self) -> _Connection:
        try:
            async with _timeout(self._connect_timeout_s):
                reader, writer = await asyncio.open_connection(self._host, self._port)
        except TimeoutError:
            raise H1Error(
                f"connecting to {self._host}:{self._port} timed out ({self._connect_timeout_s:g} s)"
            ) from None
        except OSError as exc:
            raise H1Error(f"ConnectError: {exc}") from exc
        return _Connection(reader, writer)

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    async def _send(self, conn: _Connection, data: bytes) -> H1Response:
        response = H1Response(conn, self._timeout_s)
        try:
            conn.writer.write(data)
            async with _timeout(self._timeout_s):
                await conn.writer.drain()
        except TimeoutError:
            raise H1Error(f"sending to the upstream timed out ({self._timeout_s:g} s)") from None
        except OSError as exc:
            raise _StaleConnection(f"{type(exc).__name__}: {exc}") from exc
        await response._start()
        return response

    @contextlib.asynccontextmanager
    async def post(self, path: str, body: bytes) -> AsyncIterator[H1Response]:
        """``POST prefix+path`` with a JSON ``body``; the connection goes back to the pool
        only when the answer was read to its end."""
        if self._closed:
            raise H1Error("the client is closed")
        head = (
            f"POST {self._prefix}{path} HTTP/1.1\r\n{self._fixed}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        data = head.encode("latin-1") + body
        conn = self._idle_connection()
        response: H1Response | None = None
        try:
            if conn is not None:
                try:
                    response = await self._send(conn, data)
                except _StaleConnection:
                    conn.close()  # closed while idle: once more on a new connection
                    conn = None
            if conn is None:
                conn = await self._connect()
                try:
                    response = await self._send(conn, data)
                except _StaleConnection as exc:
                    raise H1Error(str(exc)) from exc
            assert response is not None
            yield response
        finally:
            if conn is not None:
                if (
                    response is not None
                    and response.complete
                    and response.keep_alive
                    and not self._closed
                    and len(self._idle) < self._max_idle
                    and conn.usable()
                ):
                    self._idle.append(conn)
                else:
                    conn.close()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
