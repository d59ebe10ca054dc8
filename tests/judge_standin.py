"""A small deterministic OpenAI-compatible judge server for tests: it decides by a rule.

These machines have no model worth using as a judge, so the judge metrics' tests (issue 27)
grade predictions with this server instead: the same ``/v1/chat/completions`` an OpenAI-style
judge answers, with verdicts that a test can compute in advance. Run it as

    python tests/judge_standin.py --port N [options]

(``vlmhyperbench.inference.launcher.running_wrapper`` / ``wrapper_process`` start it on a free
port and wait for its ``GET /health``).

Endpoints
---------
* ``GET /health`` -> 200 ``{"status": "ok"}``; ``GET /v1/models`` lists ``--model-name``.
* ``POST /v1/chat/completions``, non-streaming only (``"stream": true`` -> 400 saying so). The
  ``model`` of the request must be ``--model-name`` (else 404, as vLLM answers); with
  ``--api-key KEY`` the request must carry ``Authorization: Bearer KEY`` (else 401).
  The judge prompt is a rendered template: from the text of the LAST ``user`` message (a string,
  or a list of OpenAI content parts, whose ``text`` parts are joined with newlines; ``image_url``
  parts are counted, never fetched) two regular expressions, compiled with ``re.MULTILINE``,
  take group 1 of their first match:

  - ``--answers-regex`` (default ``^Эталон: (.*)$``): the reference answers, joined by
    ``" | "`` (split on exactly that, each answer stripped);
  - ``--prediction-regex`` (default ``^Ответ модели: (.*)$``): the model's prediction,
    stripped. ``.`` stops at a newline, so only the first line of a prediction counts.

  No match for either -> 400 naming the regex.
* ``GET /standin/requests`` -> ``{"count": n, "requests": [...]}``: every chat request in
  arrival order (400/401/404 ones too), each ``{"n", "pid", "model", "prediction", "answers",
  "verdict", "flipped", "garbage", "reply", "status", "answered", "prompt", "images",
  "params", "answer_b"}`` (``--pairwise``: ``prediction`` is answer A; ``verdict`` is the
  verdict this server meant - ``"correct"``/``"incorrect"``, 5/1 with ``--score``, A/B with
  ``--pairwise`` - also when the reply is garbage, and null for an error status;
  ``reply`` the content sent, null for an error; ``answered`` turns true when the reply is
  handed to the HTTP server, after ``--delay-ms``; ``prompt`` the last user message's text;
  ``params`` the request body without ``messages``). ``DELETE /standin/requests`` clears the
  list (not the ``--record`` file) and answers ``{"cleared": n}``.

Verdicts
--------
* ``--rule exact`` (default): "correct" iff the prediction, casefolded, equals one of the
  answers, casefolded (both already stripped); else "incorrect". ``--rule contains``: "correct"
  iff some non-empty answer, casefolded, is a substring of the casefolded prediction.
* ``--flip-fraction F --flip-seed S`` (default 0, 0): the verdict is flipped (correct <->
  incorrect, 5 <-> 1) for the requests where ``flipped(prediction, answers, F, S)`` is true: a
  SHA-256 of ("flip", S, prediction, answers) read as a number in [0, 1) is below F. A fraction
  F of distinct samples, stable across runs and processes, independent of request order: two
  stand-ins with seeds 1 and 2 disagree exactly where one of them flips and the other does not.
* ``--garbage-fraction G``: where ``garbled(prediction, answers, G, S)`` is true (the same hash
  salted "garbage", the same seed S), the reply content is ``I think it is fine.`` - no JSON, no
  verdict word - instead of the verdict (which is still recorded). Independent of flipping.
* ``--score``: the verdict is a score, ``{"verdict": 5}`` when correct, ``{"verdict": 1}``
  when not, instead of ``{"verdict": "correct"}`` / ``{"verdict": "incorrect"}``.
* ``--pairwise``: the prompt shows two answers, on lines ``Ответ A: …`` and ``Ответ B: …``
  (``PAIRWISE_A_REGEX``, ``PAIRWISE_B_REGEX``; the prediction regex is not used), and the
  verdict is ``{"verdict": "A"}`` or ``"B"``: the answer the rule finds correct when exactly one
  is, else ``"A"`` - an undecided stand-in picks the answer shown first, a position bias a test
  can count (:func:`pairwise_choice`). Flips and garbage apply as above (a flip swaps A and B).
* ``--prose``: the JSON is wrapped in prose and a fenced block,
  ``Сравниваю ответ модели с эталоном.`` / ``` ```json ``` / the JSON / ``` ``` ``` /
  ``Это моё решение.`` (one per line), to exercise a judge reply parser; without it the content
  is the bare JSON.

Replies carry ``id`` (``chatcmpl-standin-…``), ``object: "chat.completion"``, ``created``,
``model`` (``--model-name``, default ``standin-judge``), ``system_fingerprint``
(``--fingerprint``, default ``fp_standin_1``), one choice with ``finish_reason: "stop"`` and
``usage``: ``prompt_tokens`` = words (``str.split``) in the text of all messages,
``completion_tokens`` = words in the reply content.

Failures and timing
-------------------
* ``--fail-after N --fail-status 503 --fail-count M`` (M default 1): the first N valid requests
  (arrival order) are answered; the next ones get HTTP ``--fail-status`` with an OpenAI error
  body (``{"error": {"message", "type", "param", "code"}}``). With ``--after-failures exit``
  (default) the process ``os._exit(1)``-s right after the M-th failure response is sent (with
  M = 0: after the N-th answer) - "answers 503, then dies"; requests arriving in between also
  fail. With ``--after-failures recover`` only requests N+1 … N+M fail and the rest are
  answered (a judge that is briefly unavailable).
* ``--delay-ms D``: every request (failures too) waits D ms before its reply, so a test can
  kill a job mid-run.
* ``--record PATH``: each request is also appended to PATH as one JSON line (the entry above,
  written when it is answered - a request the process dies before answering is not there), so
  tests can count requests across restarts and after the process has died.

``flipped`` and ``garbled`` are importable (``from tests.judge_standin import flipped``) for
tests that compute expected verdicts and disagreement.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

GARBAGE_REPLY = "I think it is fine."
PROSE_HEAD = "Сравниваю ответ модели с эталоном."
PROSE_TAIL = "Это моё решение."
DEFAULT_ANSWERS_REGEX = r"^Эталон: (.*)$"
DEFAULT_PREDICTION_REGEX = r"^Ответ модели: (.*)$"
PAIRWISE_A_REGEX = r"^Ответ A: (.*)$"
PAIRWISE_B_REGEX = r"^Ответ B: (.*)$"
ANSWERS_SEPARATOR = " | "


def _unit(salt: str, prediction: str, answers: list[str], seed: int) -> float:
    """A number in [0, 1) fixed by (salt, seed, prediction, answers), both stripped."""
    key = json.dumps([salt, seed, prediction.strip(), [a.strip() for a in answers]])
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def flipped(prediction: str, answers: list[str], fraction: float, seed: int) -> bool:
    """Whether a stand-in run with ``--flip-fraction fraction --flip-seed seed`` flips its
    verdict for this sample."""
    return _unit("flip", prediction, answers, seed) < fraction


def garbled(prediction: str, answers: list[str], fraction: float, seed: int) -> bool:
    """Whether a stand-in run with ``--garbage-fraction fraction --flip-seed seed`` answers this
    sample with unparseable text."""
    return _unit("garbage", prediction, answers, seed) < fraction


def judge(prediction: str, answers: list[str], rule: str = "exact") -> bool:
    """The rule's verdict before any flip: whether the prediction is correct."""
    guess = prediction.strip().casefold()
    golds = [a.strip().casefold() for a in answers]
    if rule == "contains":
        return any(g and g in guess for g in golds)
    return guess in golds


def pairwise_choice(answer_a: str, answer_b: str, answers: list[str], rule: str = "exact") -> str:
    """``--pairwise``'s verdict before any flip: the one correct answer, else the first shown."""
    correct_a, correct_b = judge(answer_a, answers, rule), judge(answer_b, answers, rule)
    return "B" if correct_b and not correct_a else "A"


def parse_answers(line: str) -> list[str]:
    return [a.strip() for a in line.split(ANSWERS_SEPARATOR)]


@dataclass
class Settings:
    model_name: str = "standin-judge"
    fingerprint: str = "fp_standin_1"
    api_key: str | None = None
    rule: str = "exact"
    answers_regex: str = DEFAULT_ANSWERS_REGEX
    prediction_regex: str = DEFAULT_PREDICTION_REGEX
    flip_fraction: float = 0.0
    flip_seed: int = 0
    garbage_fraction: float = 0.0
    score: bool = False
    pairwise: bool = False
    prose: bool = False
    fail_after: int | None = None
    fail_status: int = 503
    fail_count: int = 1
    after_failures: str = "exit"
    delay_ms: float = 0.0
    record: str | None = None


def _texts(content: Any) -> tuple[str, int]:
    """The text of a message's content and how many images it has."""
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            images += 1
    return "\n".join(texts), images


def _error(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def reply_content(verdict: str | int, settings: Settings) -> str:
    body = json.dumps({"verdict": verdict}, ensure_ascii=False)
    if settings.prose:
        return f"{PROSE_HEAD}\n```json\n{body}\n```\n{PROSE_TAIL}"
    return body


class _Judge:
    """The server's state: the requests seen, how many were valid, how many failures sent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.answers_re = re.compile(settings.answers_regex, re.MULTILINE)
        prediction_regex = PAIRWISE_A_REGEX if settings.pairwise else settings.prediction_regex
        self.prediction_re = re.compile(prediction_regex, re.MULTILINE)
        self.answer_b_re = re.compile(PAIRWISE_B_REGEX, re.MULTILINE)
        self.requests: list[dict[str, Any]] = []
        self.state = {"valid": 0, "failed_sent": 0}

    def finish(self, entry: dict[str, Any]) -> None:
        entry["answered"] = True
        if self.settings.record:
            with open(self.settings.record, "a", encoding="utf-8") as record:
                record.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def refuse(self, entry: dict[str, Any], status: int, message: str, kind: str) -> JSONResponse:
        entry["status"] = status
        self.finish(entry)
        return JSONResponse(_error(status, message, kind), status_code=status)

    async def die(self) -> None:
        await asyncio.sleep(0.05)  # let the transport hand the last response to the kernel
        print(f"judge stand-in: exiting after {self.state['failed_sent']} failure(s)", flush=True)
        os._exit(1)

    async def chat(self, request: Request) -> Any:
        entry: dict[str, Any] = {
            "n": len(self.requests), "pid": os.getpid(), "model": None, "prediction": None,
            "answers": None, "verdict": None, "flipped": False, "garbage": False,
            "reply": None, "status": None, "answered": False, "prompt": None, "images": 0,
            "params": None, "answer_b": None,
        }  # fmt: skip
        self.requests.append(entry)
        try:
            body = await request.json()
        except ValueError:
            return self.refuse(entry, 400, "the body is not JSON", "BadRequestError")
        refusal = _refusal(body, request.headers.get("authorization"), self.settings)
        if refusal is not None:
            return self.refuse(entry, *refusal)
        entry["model"] = body.get("model")
        entry["params"] = {k: v for k, v in body.items() if k != "messages"}
        messages = body["messages"]
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        prompt, images = _texts(users[-1].get("content"))
        entry["prompt"], entry["images"] = prompt, images
        read = _read_prompt(prompt, self.answers_re, self.prediction_re, self.settings)
        if isinstance(read, str):
            return self.refuse(entry, 400, read, "BadRequestError")
        answers, prediction = read
        entry["prediction"], entry["answers"] = prediction, answers
        answer_b = self.answer_b_re.search(prompt) if self.settings.pairwise else None
        if self.settings.pairwise and answer_b is None:
            return self.refuse(
                entry, 400, f"no line matches {PAIRWISE_B_REGEX!r}", "BadRequestError"
            )
        entry["answer_b"] = answer_b.group(1).strip() if answer_b else None

        # Decided at arrival, before any await: the order of arrival fixes who fails.
        index = self.state["valid"]
        self.state["valid"] += 1
        failing = self.settings.fail_after is not None and index >= self.settings.fail_after
        if failing and self.settings.after_failures == "recover":
            failing = index < self.settings.fail_after + self.settings.fail_count
        exiting = self.settings.fail_after is not None and self.settings.after_failures == "exit"
        if self.settings.delay_ms > 0:
            await asyncio.sleep(self.settings.delay_ms / 1000)
        if failing:
            self.state["failed_sent"] += 1
            entry["status"] = self.settings.fail_status
            self.finish(entry)
            last = exiting and self.state["failed_sent"] >= self.settings.fail_count
            message = f"the judge stand-in is unavailable (request {index + 1})"
            body = _error(self.settings.fail_status, message, "InternalServerError")
            background = BackgroundTask(self.die) if last else None
            return JSONResponse(body, status_code=self.settings.fail_status, background=background)

        entry["flipped"] = flipped(
            prediction, answers, self.settings.flip_fraction, self.settings.flip_seed
        )
        entry["verdict"] = self.verdict(prediction, entry["answer_b"], answers, entry["flipped"])
        entry["garbage"] = garbled(
            prediction, answers, self.settings.garbage_fraction, self.settings.flip_seed
        )
        content = (
            GARBAGE_REPLY if entry["garbage"] else reply_content(entry["verdict"], self.settings)
        )
        entry["reply"], entry["status"] = content, 200
        self.finish(entry)
        reply = _completion(content, messages, self.settings)
        last = exiting and self.settings.fail_count == 0 and index + 1 >= self.settings.fail_after
        return JSONResponse(reply, background=BackgroundTask(self.die) if last else None)

    def verdict(
        self, prediction: str, answer_b: str | None, answers: list[str], flip: bool
    ) -> str | int:
        """The verdict meant: correct/incorrect, 5/1 with ``--score``, A/B with ``--pairwise``."""
        if answer_b is not None:
            choice = pairwise_choice(prediction, answer_b, answers, self.settings.rule)
            return {"A": "B", "B": "A"}[choice] if flip else choice
        correct = judge(prediction, answers, self.settings.rule) ^ flip
        if self.settings.score:
            return 5 if correct else 1
        return "correct" if correct else "incorrect"


def build_app(settings: Settings) -> FastAPI:
    app, judge_state = FastAPI(), _Judge(settings)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": settings.model_name, "object": "model", "owned_by": "standin"}
        return {"object": "list", "data": [card]}

    @app.get("/standin/requests")
    async def get_requests() -> dict[str, Any]:
        return {"count": len(judge_state.requests), "requests": judge_state.requests}

    @app.delete("/standin/requests")
    async def clear_requests() -> dict[str, int]:
        count = len(judge_state.requests)
        judge_state.requests.clear()
        return {"cleared": count}

    app.post("/v1/chat/completions")(judge_state.chat)
    return app


def _refusal(body: Any, authorization: str | None, settings: Settings) -> tuple | None:
    """(status, message, error type) for a request this server refuses; None to answer it."""
    if not isinstance(body, dict):
        return 400, "the body is not a JSON object", "BadRequestError"
    if settings.api_key is not None and authorization != f"Bearer {settings.api_key}":
        return 401, "Incorrect API key provided.", "AuthenticationError"
    if body.get("model") != settings.model_name:
        return 404, f"The model `{body.get('model')}` does not exist.", "NotFoundError"
    if body.get("stream"):
        return 400, "the judge stand-in does not stream: send stream: false", "BadRequestError"
    messages = body.get("messages")
    users = [m for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
    if not isinstance(messages, list) or not users:
        return 400, "messages: a user message is required", "BadRequestError"
    return None


def _read_prompt(
    prompt: str, answers_re: re.Pattern[str], prediction_re: re.Pattern[str], settings: Settings
) -> tuple[list[str], str] | str:
    """The answers and the prediction in the judge prompt, or why they are not there."""
    answers_match = answers_re.search(prompt)
    prediction_match = prediction_re.search(prompt)
    for name, match, pattern in (
        ("answers", answers_match, settings.answers_regex),
        ("prediction", prediction_match, settings.prediction_regex),
    ):
        if match is None:
            return (
                f"the judge stand-in found no {name} in the last user message: "
                f"no line matches {pattern!r}"
            )
    assert answers_match is not None and prediction_match is not None
    return parse_answers(answers_match.group(1)), prediction_match.group(1).strip()


def _completion(content: str, messages: list[Any], settings: Settings) -> dict[str, Any]:
    """An OpenAI chat completion carrying ``content``, with word counts as its usage."""
    prompt_tokens = sum(
        len(_texts(m.get("content"))[0].split()) for m in messages if isinstance(m, dict)
    )
    completion_tokens = len(content.split())
    message = {"role": "assistant", "content": content}
    return {
        "id": f"chatcmpl-standin-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": settings.model_name,
        "system_fingerprint": settings.fingerprint,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-name", default="standin-judge")
    parser.add_argument("--fingerprint", default="fp_standin_1")
    parser.add_argument("--api-key", default=None, help="require Authorization: Bearer KEY")
    parser.add_argument("--rule", choices=["exact", "contains"], default="exact")
    parser.add_argument("--answers-regex", default=DEFAULT_ANSWERS_REGEX)
    parser.add_argument("--prediction-regex", default=DEFAULT_PREDICTION_REGEX)
    parser.add_argument("--flip-fraction", type=float, default=0.0)
    parser.add_argument("--flip-seed", type=int, default=0)
    parser.add_argument("--garbage-fraction", type=float, default=0.0)
    parser.add_argument("--score", action="store_true", help="verdict 5 (correct) or 1")
    parser.add_argument("--pairwise", action="store_true", help="verdict A or B (two answers)")
    parser.add_argument("--prose", action="store_true", help="wrap the JSON in prose")
    parser.add_argument("--fail-after", type=int, default=None)
    parser.add_argument("--fail-status", type=int, default=503)
    parser.add_argument("--fail-count", type=int, default=1)
    parser.add_argument("--after-failures", choices=["exit", "recover"], default="exit")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--record", default=None, help="append each request as a JSON line")
    args = parser.parse_args(argv)
    for name in ("answers_regex", "prediction_regex"):
        try:
            groups = re.compile(getattr(args, name)).groups
        except re.error as exc:
            parser.error(f"--{name.replace('_', '-')}: {exc}")
        if groups < 1:
            parser.error(f"--{name.replace('_', '-')} needs a group (the text it extracts)")
    if args.fail_after is not None and (args.fail_after < 0 or args.fail_count < 0):
        parser.error("--fail-after and --fail-count must not be negative")
    fields = Settings.__dataclass_fields__
    settings = Settings(**{k: v for k, v in vars(args).items() if k in fields})
    return args, settings


def main(argv: list[str] | None = None) -> None:
    args, settings = parse_args(argv)
    print(f"judge stand-in {settings.model_name} on {args.host}:{args.port}", flush=True)
    uvicorn.run(
        build_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main(sys.argv[1:])
