"""A stand-in for a GPU inference engine's OpenAI server (vLLM, SGLang), for benchmarks.

These machines have no GPU and no vLLM, so ``wrapper_overhead.py`` needs an upstream whose time
per request is the *engine's* time, not CPU it shares with the wrapper. This server behaves
like vLLM's ``/v1/chat/completions`` from the outside, with the timing of continuous batching:

* every ``--step-ms`` one decode step runs and gives one token to every running sequence
  (``--max-num-seqs`` at most; the rest wait), whatever the batch size, as on a GPU that is
  not saturated;
* a new sequence joins the first step after its prefill (``--prefill-ms``);
* answers stream one SSE chunk per token, in vLLM's shapes (a first chunk with the role, one
  per token, the finish chunk, then a usage chunk with ``stream_options.include_usage``), or
  come as one ``chat.completion`` JSON; ``max_tokens``/``max_completion_tokens`` and
  ``ignore_eos`` are honoured (without ``ignore_eos`` an answer ends after 3/4 of its tokens).

With ``--step-ms 0 --prefill-ms 0`` it is a zero-latency server (every token at once, no decode
loop), to measure a load generator's own ceiling. Per streamed request it records when it
received the request and when it sent the first and the last token (``perf_counter`` seconds,
comparable with a client's on the same machine): ``GET /standin/records`` returns them by
response id (``DELETE`` clears them), for ``perf_accuracy.py``.

The tokens are the words ``t0 t1 …`` (one token each). ``prompt_tokens`` counts the words of
the text parts plus ``--image-tokens`` per image. Nothing is computed, so the CPU this process
uses is the HTTP serving alone, as in vLLM's API server process.

    python benchmarks/engine_standin.py --port 8000 --step-ms 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


@dataclass
class Sequence:
    """One request inside the engine: its tokens arrive on ``tokens`` (None = finished)."""

    max_tokens: int
    ready_at: float
    tokens: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)
    produced: int = 0


class Engine:
    """The decode loop: one step every ``step_s`` for up to ``max_num_seqs`` sequences."""

    def __init__(self, step_s: float, prefill_s: float, max_num_seqs: int) -> None:
        self.step_s = step_s
        self.prefill_s = prefill_s
        self.max_num_seqs = max_num_seqs
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []
        self.steps = 0

    def add(self, max_tokens: int) -> Sequence:
        sequence = Sequence(max_tokens, time.perf_counter() + self.prefill_s)
        if self.step_s <= 0 and self.prefill_s <= 0:  # zero latency: every token at once
            for token in range(max_tokens):
                sequence.tokens.put_nowait(token)
            sequence.tokens.put_nowait(None)
            return sequence
        self.waiting.append(sequence)
        return sequence

    async def run(self) -> None:
        if self.step_s <= 0 and self.prefill_s <= 0:
            return
        next_step = time.perf_counter()
        while True:
            next_step += self.step_s
            await asyncio.sleep(max(0.0, next_step - time.perf_counter()))
            now = time.perf_counter()
            next_step = max(next_step, now - self.step_s)  # no burst of steps after a stall
            self._admit(now)
            self.steps += 1
            still: list[Sequence] = []
            for sequence in self.running:
                sequence.tokens.put_nowait(sequence.produced)
                sequence.produced += 1
                if sequence.produced >= sequence.max_tokens:
                    sequence.tokens.put_nowait(None)
                else:
                    still.append(sequence)
            self.running = still

    def _admit(self, now: float) -> None:
        room = self.max_num_seqs - len(self.running)
        if room <= 0 or not self.waiting:
            return
        ready = [s for s in self.waiting if s.ready_at <= now][:room]
        if ready:
            chosen = {id(s) for s in ready}
            self.waiting = [s for s in self.waiting if id(s) not in chosen]
            self.running.extend(ready)


def _prompt_tokens(messages: list[dict[str, Any]], image_tokens: int) -> int:
    count = 0
    for message in messages:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for part in parts:
            if part.get("type") == "text":
                count += len(str(part.get("text", "")).split())
            elif part.get("type") == "image_url":
                count += image_tokens
    return count


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _error(status: int, message: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "BadRequestError", "param": None, "code": status}}
    return JSONResponse(body, status_code=status)


def stamping_protocol() -> type:
    """uvicorn's httptools protocol, stamping ``scope["state"]["received"]`` when a request's
    first bytes are parsed - before the app's task for it runs, so the record counts the time
    the request waited for the server's event loop (as a client sees it)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class Stamping(HttpToolsProtocol):
        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope["state"]["received"] = time.perf_counter()

    return Stamping


def build_app(engine: Engine, served_model_name: str, image_tokens: int) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(engine.run())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)
    records: dict[str, dict[str, float | int]] = {}

    @app.get("/standin/records")
    async def get_records() -> dict[str, dict[str, float | int]]:
        return records

    @app.delete("/standin/records")
    async def clear_records() -> dict[str, int]:
        count = len(records)
        records.clear()
        return {"cleared": count}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": served_model_name, "object": "model", "owned_by": "standin"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        received = request.scope.get("state", {}).get("received", time.perf_counter())
        body = await request.json()
        if body.get("model") != served_model_name:
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "messages: at least one message is required")
        limit = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
        length = limit if body.get("ignore_eos") else max(1, limit * 3 // 4)
        prompt_tokens = _prompt_tokens(messages, image_tokens)
        sequence = engine.add(length)
        reason = "length" if length == limit else "stop"
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": served_model_name,
        }
        if not body.get("stream"):
            words = []
            while (token := await sequence.tokens.get()) is not None:
                words.append(f"t{token}")
            usage = _usage(prompt_tokens, len(words))
            message = {"role": "assistant", "content": " ".join(words)}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
            return {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        record: dict[str, float | int] = {"received": received}
        records[head["id"]] = record
        return StreamingResponse(
            _sse(sequence, head, reason, prompt_tokens, include_usage, record),
            media_type="text/event-stream",
        )

    return app


async def _sse(
    sequence: Sequence,
    head: dict[str, Any],
    reason: str,
    prompt_tokens: int,
    usage: bool,
    record: dict[str, float | int],
) -> AsyncIterator[str]:
    head = {**head, "object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data = {**head, "choices": [choice], **extra}
        return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    count = 0
    while (token := await sequence.tokens.get()) is not None:
        yield chunk({"content": f"t{token}" if count == 0 else f" t{token}"})
        record["last_token"] = time.perf_counter()  # the chunk is handed to the server
        record.setdefault("first_token", record["last_token"])
        count += 1
    record["tokens"] = count
    yield chunk({}, reason)
    if usage:
        data = {**head, "choices": [], "usage": _usage(prompt_tokens, count)}
        yield f"data: {json.dumps(data, separators=(',', ':'))}\n\n"
    yield "data: [DONE]\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-model-name", default="m")
    parser.add_argument("--step-ms", type=float, default=15.0, help="time of one decode step")
    parser.add_argument("--prefill-ms", type=float, default=30.0)
    parser.add_argument("--max-num-seqs", type=int, default=256)
    parser.add_argument("--image-tokens", type=int, default=64)
    args = parser.parse_args()
    engine = Engine(args.step_ms / 1000, args.prefill_ms / 1000, args.max_num_seqs)
    app = build_app(engine, args.served_model_name, args.image_tokens)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", access_log=False,
        http=stamping_protocol(),
    )  # fmt: skip


if __name__ == "__main__":
    main()
