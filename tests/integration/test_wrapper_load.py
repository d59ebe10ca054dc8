"""500 concurrent requests over loopback: every one answered once, each answer matched to its
own request, no 5xx.

Each request has its own prompt length, so its ``prompt_tokens`` (computed independently with
the model's processor) identifies it: a batched answer that landed on the wrong request, or a
prompt count that included another row's padding, would not match. A sample of the answers is
also compared with ``transformers``' own greedy generate of the same prompt.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

torch = pytest.importorskip("torch")
openai = pytest.importorskip("openai")

from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: E402

pytestmark = pytest.mark.slow

N_REQUESTS = 500
MAX_TOKENS = 2


def _question(i: int) -> str:
    return "Сумма" + " 7" * i  # one more token per request


def test_500_concurrent_requests_each_answered_once_and_matched(
    start_wrapper: Any, tiny_model_dirs: dict[str, Path]
) -> None:
    model_dir = tiny_model_dirs["llava"]
    server = start_wrapper(
        "--backend", "hf", "--model", str(model_dir), "--threads", "1",
        "--max-batch-size", "32", "--log-level", "info",
    )  # fmt: skip
    processor = AutoProcessor.from_pretrained(model_dir)

    def prompt_ids(i: int) -> list[int]:
        chat = [{"role": "user", "content": [{"type": "text", "text": _question(i)}]}]
        text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        return processor(text=text, return_tensors="pt")["input_ids"][0].tolist()

    expected = [len(prompt_ids(i)) for i in range(N_REQUESTS)]
    assert len(set(expected)) == N_REQUESTS, "prompt lengths must identify the requests"

    async def run() -> list[Any]:
        async with server.async_client() as client:  # openai's pool: 1000 connections
            order = list(range(N_REQUESTS))
            random.Random(0).shuffle(order)  # arrival order unrelated to prompt length

            async def one(i: int) -> tuple[int, Any]:
                try:
                    return i, await client.chat.completions.create(
                        model=server.name,
                        messages=[{"role": "user", "content": _question(i)}],
                        max_tokens=MAX_TOKENS,
                    )
                except openai.APIStatusError as exc:  # reported below, with its status
                    return i, exc

            return await asyncio.gather(*(one(i) for i in order))

    results = dict(asyncio.run(run()))
    errors = {i: r for i, r in results.items() if isinstance(r, Exception)}
    assert not errors, {i: (e.status_code, str(e)[:200]) for i, e in list(errors.items())[:5]}
    assert sorted(results) == list(range(N_REQUESTS))
    ids = {r.id for r in results.values()}
    assert len(ids) == N_REQUESTS
    batch_sizes = []
    for i, resp in results.items():
        assert resp.usage.prompt_tokens == expected[i], (i, resp.usage, expected[i])
        assert 1 <= resp.usage.completion_tokens <= MAX_TOKENS
        perf = resp.model_extra["performance"]
        assert perf["prompt_tokens"] == expected[i]
        assert perf["queue_ms"] <= perf["ttft_ms"] <= perf["latency_ms"]
        batch_sizes.append(perf["batch_size"])
    assert max(batch_sizes) > 1
    # Every request reached the server exactly once (no client retries: max_retries=0).
    assert server.chat_requests_logged() == N_REQUESTS
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert (
        'vlmhb_requests_total{route="/v1/chat/completions",status="200",stream="false"} '
        f"{N_REQUESTS}"
    ) in metrics

    # The answers themselves belong to their prompts: compare a sample with transformers.
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    eos = model.generation_config.eos_token_id
    for i in random.Random(1).sample(range(N_REQUESTS), 12):
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.tensor([prompt_ids(i)]), max_new_tokens=MAX_TOKENS, do_sample=False
            )
        new_ids = out[0, expected[i] :].tolist()
        if eos in new_ids:
            new_ids = new_ids[: new_ids.index(eos) + 1]
        reference = processor.tokenizer.decode(new_ids, skip_special_tokens=True)
        assert results[i].choices[0].message.content == reference, i
        assert results[i].usage.completion_tokens == len(new_ids), i
