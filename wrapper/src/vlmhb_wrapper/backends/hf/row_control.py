"""Per-row control inside one batched ``generate()``: each row's end (:class:`RowStopper`,
which also streams each new token to its request) and its own sampling (:class:`RowSampler`)."""

from __future__ import annotations

import random
import time
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from vlmhb_wrapper.backends.hf.rows import Row, RowEvent, dispatch

__all__ = ["RowSampler", "RowStopper"]


class RowStopper(StoppingCriteria):
    """Per-row end of generation; streams each row's new token to its request."""

    def __init__(self, rows: list[Row], eos_ids: set[int]) -> None:
        self.rows = rows
        self.eos_ids = eos_ids
        self.done = [False] * len(rows)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        now = time.perf_counter()
        last = input_ids[:, -1].tolist()
        events: list[RowEvent] = []
        for i, row in enumerate(self.rows):
            if self.done[i]:
                continue
            token = last[i]
            row.count += 1
            events.append((row, "tok", token, now))
            if token in self.eos_ids and not row.request.ignore_eos:
                reason = "stop"
            elif row.count >= row.request.max_new_tokens:
                reason = "length"
            elif row.cancelled:
                reason = ""
            else:
                continue
            self.done[i] = True
            if reason:
                events.append((row, "end", reason, now))
        if events:
            dispatch(events)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    def finish(self, reason: str) -> None:
        now = time.perf_counter()
        events = [(row, "end", reason, now) for i, row in enumerate(self.rows) if not self.done[i]]
        self.done = [True] * len(self.rows)
        if events:
            dispatch(events)


class RowSampler(LogitsProcessor):
    """Each row's own ``min_tokens``, temperature, top-p and seeded sampling.

    Generation runs in greedy mode; for a sampling row the sampled token is made the only
    finite score, so greedy picks it. Each row draws from its own generator.
    """

    def __init__(self, rows: list[Row], eos_ids: set[int], prompt_len: int) -> None:
        self.rows = rows
        self.eos = sorted(eos_ids)
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_len
        for i, row in enumerate(self.rows):
            req = row.request
            if req.min_tokens and step < req.min_tokens and self.eos:
                scores[i, self.eos] = -float("inf")
            if req.temperature <= 0:
                continue
            logits = scores[i].float() / req.temperature
            if req.top_p < 1.0:
                # Keep the smallest set of most likely tokens whose mass reaches top_p.
                sorted_logits, order = torch.sort(logits, descending=True)
                sorted_probs = torch.softmax(sorted_logits, dim=-1)
                before = sorted_probs.cumsum(dim=-1) - sorted_probs
                logits[order[before >= req.top_p]] = -float("inf")
            if row.generator is None:
                row.generator = torch.Generator(device=scores.device)
                seed = req.seed if req.seed is not None else random.getrandbits(63)
                row.generator.manual_seed(seed % (2**63))
            probs = torch.softmax(logits, dim=-1)
            token = torch.multinomial(probs, 1, generator=row.generator)
            scores[i] = -float("inf")
            scores[i, token] = 0.0
        return scores
