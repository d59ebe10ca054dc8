"""In-process Hugging Face ``transformers`` backend with dynamic batching.

Pipeline of one request::

    event loop ──► preprocessing pool ──► batch queue ──► generation thread ──► event loop
    (validate)     (chat template +       (collect for     (one generate() per   (decode,
                    processor, per         batch_wait_ms,    batch; per-row stop,  stop strings,
                    request, parallel)     up to max batch)  tokens streamed out)  SSE/JSON)

* **Batching.** The generation thread takes the first queued request, waits up to
  ``batch_wait_ms`` for more, up to ``max_batch_size``, left-pads their already-processed
  inputs and runs one ``generate``. The wait counts from that request's arrival in the queue
  or from the end of the previous batch, whichever is later: the clients of a batch that just
  ended send their next requests within milliseconds, and starting a new batch with only the
  one request that waited would split the load into a small and a large batch for good
  (1 + 31 at concurrency 32). For the same reason the wait goes on while requests already
  accepted are still being preprocessed (up to ``_FILL_WAIT_FACTOR`` times the wait).
  Requests whose processor outputs cannot be stacked (e.g. with and without images) go to
  different batches; order is otherwise FIFO.
* **Per-row control.** A stopping criterion sees every new token of every row: it streams the
  token to its request, and ends that row on its EOS (unless ``ignore_eos``), at its own
  ``max_tokens``, or when its client went away. A logits processor applies each row's own
  sampling (temperature, top-p, a private ``torch.Generator`` seeded from the request's
  ``seed``, so a seeded answer does not depend on its batch mates) and ``min_tokens``.
* **Honest telemetry.** ``prompt_tokens`` is each request's own prompt length (no padding);
  ``queue_ms`` is the time a request waited for a preprocessing worker plus the time from
  entering the batch queue until its batch started; TTFT is when generate produced its first
  token; ``batch_size`` says how many requests shared the batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jinja2 import TemplateError
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.utils import logging as hf_logging

from vlmhb_wrapper.backends.base import (
    Backend,
    BackendConfig,
    GenerationRequest,
    GenerationResult,
    ImageSegment,
    PromptMessage,
    StreamEvent,
    TextDelta,
)
from vlmhb_wrapper.errors import InvalidRequestError, ServiceUnavailableError
from vlmhb_wrapper.telemetry import MemoryMonitor, MemoryProbe, NvmlProbe, RssProbe

logger = logging.getLogger(__name__)

__all__ = ["CollatePlan", "HFBackend", "IncrementalText", "to_hf_chat"]

_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
#: Engine args the hf backend understands; the others are for vllm/sglang and are ignored.
_HF_ENGINE_ARGS = {
    "dtype",
    "max_model_len",
    "limit_mm_per_prompt",
    "mm_processor_kwargs",
    "max_num_seqs",
    "trust_remote_code",
    "chat_template",
}
#: A batch that is not full waits at most this many times ``batch_wait_ms`` for requests that
#: are still being preprocessed.
_FILL_WAIT_FACTOR = 4
#: Processor outputs of shape (1, L) that are *not* per-token sequences.
_NOT_SEQUENCES = {"image_grid_thw", "video_grid_thw", "image_sizes", "second_per_grid_ts"}


def to_hf_chat(messages: tuple[PromptMessage, ...]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Backend messages -> HF multimodal chat format + the images in order of appearance.

    Content is always a list of parts (``{"type": "image"}`` / ``{"type": "text"}``): that is
    the form every HF multimodal chat template understands.
    """
    chat: list[dict[str, Any]] = []
    images: list[Any] = []
    for message in messages:
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, ImageSegment):
                content.append({"type": "image"})
                images.append(part.image)
            else:
                content.append({"type": "text", "text": part.text})
        chat.append({"role": message.role, "content": content})
    return chat, images


# ------------------------------------------------------------------------------- collation


class CollatePlan:
    """Decides which processed requests can share a batch, and stacks them.

    * per-token sequences (``input_ids``, ``attention_mask``, ``token_type_ids``, ...; shape
      ``(1, L)``) are left-padded to the longest;
    * other tensors are concatenated along dim 0 when their trailing shapes agree (LLaVA's
      ``(n_images, C, H, W)``, Qwen2-VL's ``(n_patches, D)`` and ``image_grid_thw``), or, when
      every request has dim 0 == 1, zero-padded on the other dims first (Idefics3's
      ``(1, n_tiles, C, H, W)`` + ``pixel_attention_mask``, which the model ignores when zero).
    """

    def __init__(self, first: dict[str, torch.Tensor]) -> None:
        self.seq = _sequence_keys(first)
        self.keys = frozenset(first)
        self.dtypes = {k: v.dtype for k, v in first.items()}
        self.ndims = {k: v.dim() for k, v in first.items()}
        self.trailing = {k: tuple(v.shape[1:]) for k, v in first.items() if k not in self.seq}
        self.mode = dict.fromkeys(self.trailing, "cat")
        self.dim0_one = {k: v.shape[0] == 1 for k, v in first.items() if k not in self.seq}
        self.size = 1

    def accepts(self, inputs: dict[str, torch.Tensor]) -> bool:
        if frozenset(inputs) != self.keys or _sequence_keys(inputs) != self.seq:
            return False
        for key, tensor in inputs.items():
            if tensor.dtype != self.dtypes[key] or tensor.dim() != self.ndims[key]:
                return False
            if key in self.seq:
                continue
            same = tuple(tensor.shape[1:]) == self.trailing[key]
            if self.mode[key] == "cat" and same:
                continue
            if not (self.dim0_one[key] and tensor.shape[0] == 1):
                return False
        return True

    def add(self, inputs: dict[str, torch.Tensor]) -> None:
        for key, tensor in inputs.items():
            if key in self.seq:
                continue
            if tuple(tensor.shape[1:]) != self.trailing[key]:
                self.mode[key] = "pad"
            self.dim0_one[key] = self.dim0_one[key] and tensor.shape[0] == 1
        self.size += 1

    def collate(self, rows: Sequence[dict[str, torch.Tensor]], pad_id: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        length = max(row["input_ids"].shape[1] for row in rows)
        for key in self.keys:
            tensors = [row[key] for row in rows]
            if key in self.seq:
                fill = pad_id if key == "input_ids" else 0
                out[key] = torch.cat(
                    [F.pad(t, (length - t.shape[1], 0), value=fill) for t in tensors]
                )
            elif self.mode[key] == "cat" or len(tensors) == 1:
                out[key] = torch.cat(tensors)
            else:
                target = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
                padded = []
                for t in tensors:
                    pads: list[int] = []
                    for d in reversed(range(1, t.dim())):
                        pads += [0, target[d] - t.shape[d]]
                    padded.append(F.pad(t, pads, value=0))
                out[key] = torch.cat(padded)
        return out


def _sequence_keys(inputs: dict[str, torch.Tensor]) -> frozenset[str]:
    length = inputs["input_ids"].shape[1]
    return frozenset(
        k
        for k, v in inputs.items()
        if k not in _NOT_SEQUENCES and v.dim() == 2 and v.shape == (1, length)
    )


# ----------------------------------------------------------------------------- text output


class IncrementalText:
    """Token ids -> text deltas, with OpenAI ``stop`` semantics.

    Decodes a sliding window (``prefix_offset``/``read_offset``, as TGI and vLLM do) so a
    token that only completes a multi-byte character is held until the character is whole.
    With stop sequences, the last ``max(len(stop)) - 1`` characters are held back until it is
    clear they do not start a stop sequence; the text is cut before the first stop sequence.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str] = ()) -> None:
        self._tok = tokenizer
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0
        self.text = ""
        self._emitted = 0
        self._stops = tuple(stops)
        self._hold = max((len(s) for s in stops), default=1) - 1
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)

    def push(self, token: int) -> str:
        """Add one token; returns the text that may be sent now (may be empty)."""
        self._ids.append(token)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.text += new_text[len(prefix_text) :]
            self._prefix, self._read = self._read, len(self._ids)
        return self._release(final=False)

    def finish(self) -> str:
        """No more tokens: flush what was held back."""
        if self._read < len(self._ids) and not self.stopped:
            prefix_text = self._decode(self._ids[self._prefix : self._read])
            new_text = self._decode(self._ids[self._prefix :])
            self.text += new_text[len(prefix_text) :]
            self._read = len(self._ids)
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        if self.stopped:
            return ""
        if self._stops:
            start = max(0, self._emitted - self._hold)
            hits = [i for s in self._stops if (i := self.text.find(s, start)) >= 0]
            if hits:
                cut = min(hits)
                delta = self.text[self._emitted : cut]
                self.text = self.text[:cut]
                self._emitted = cut
                self.stopped = True
                return delta
        safe = len(self.text) if final else len(self.text) - self._hold
        if safe <= self._emitted:
            return ""
        delta = self.text[self._emitted : safe]
        self._emitted = safe
        return delta


# ------------------------------------------------------------------------------ batch rows


class _Row:
    """One request inside the generation pipeline (shared by the loop and the worker)."""

    __slots__ = (
        "batch_size",
        "cancelled",
        "count",
        "enqueued",
        "expected",
        "gen_start",
        "generator",
        "gpu_peak_mb",
        "inputs",
        "loop",
        "preprocess_s",
        "prompt_tokens",
        "queue",
        "queue_s",
        "request",
    )

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, Any, float]] = asyncio.Queue()
        self.inputs: dict[str, torch.Tensor] = {}
        self.prompt_tokens = 0
        self.cancelled = False
        self.count = 0
        self.enqueued = 0.0
        self.expected = False  # counted by the batcher while it is being preprocessed
        self.queue_s = 0.0
        self.preprocess_s = 0.0
        self.gen_start = 0.0
        self.batch_size = 0
        self.generator: torch.Generator | None = None
        self.gpu_peak_mb: float | None = None


def _deliver(events: list[tuple[_Row, str, Any, float]]) -> None:
    for row, kind, value, stamp in events:
        row.queue.put_nowait((kind, value, stamp))


def _dispatch(events: list[tuple[_Row, str, Any, float]]) -> None:
    """Hand events from the worker thread to the rows' event loops (one call per loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Row, str, Any, float]]] = {}
    for event in events:
        by_loop.setdefault(event[0].loop, []).append(event)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop (shutdown): nobody listens
            loop.call_soon_threadsafe(_deliver, items)


class _RowStopper(StoppingCriteria):
    """Per-row end of generation; streams each row's new token to its request."""

    def __init__(self, rows: list[_Row], eos_ids: set[int]) -> None:
        self.rows = rows
        self.eos_ids = eos_ids
        self.done = [False] * len(rows)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        now = time.perf_counter()
        last = input_ids[:, -1].tolist()
        events: list[tuple[_Row, str, Any, float]] = []
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
            _dispatch(events)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    def finish(self, reason: str) -> None:
        now = time.perf_counter()
        events = [(row, "end", reason, now) for i, row in enumerate(self.rows) if not self.done[i]]
        self.done = [True] * len(self.rows)
        if events:
            _dispatch(events)


class _RowSampler(LogitsProcessor):
    """Each row's own ``min_tokens``, temperature, top-p and seeded sampling.

    Generation runs in greedy mode; for a sampling row the sampled token is made the only
    finite score, so greedy picks it. Each row draws from its own generator.
    """

    def __init__(self, rows: list[_Row], eos_ids: set[int], prompt_len: int) -> None:
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


class _Batcher:
    """The queue between the event loop and the generation thread."""

    def __init__(self, max_batch: int, wait_s: float) -> None:
        self.max_batch = max_batch
        self.wait_s = wait_s
        self._queue: deque[_Row] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._preprocessing = 0  # accepted requests not yet in the queue
        self._last_batch_end = 0.0

    def __len__(self) -> int:
        return len(self._queue)

    def expect(self, row: _Row) -> None:
        """``row`` is being preprocessed: a batch that is not full may wait for it."""
        with self._cv:
            row.expected = True
            self._preprocessing += 1

    def _arrived(self, row: _Row) -> None:
        if row.expected:
            row.expected = False
            self._preprocessing -= 1

    def abandon(self, row: _Row) -> None:
        """``row`` will not come (its preprocessing failed or was cancelled)."""
        with self._cv:
            self._arrived(row)
            self._cv.notify()

    def submit(self, row: _Row) -> None:
        with self._cv:
            self._arrived(row)
            if self._closed:
                raise ServiceUnavailableError("the server is shutting down", code="shutting_down")
            row.enqueued = time.perf_counter()
            self._queue.append(row)
            self._cv.notify()

    def close(self) -> list[_Row]:
        with self._cv:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        return left

    def batch_done(self) -> None:
        with self._cv:
            self._last_batch_end = time.perf_counter()

    def next_batch(self) -> tuple[list[_Row], CollatePlan] | None:
        with self._cv:
            while True:
                while self._queue and self._queue[0].cancelled:
                    self._queue.popleft()
                if self._queue or self._closed:
                    break
                self._cv.wait()
            if self._closed:
                return None
            start = max(self._queue[0].enqueued, self._last_batch_end)
            deadline = start + self.wait_s
            fill_deadline = start + self.wait_s * _FILL_WAIT_FACTOR
            while True:
                batch, plan = self._select()
                if len(batch) >= self.max_batch or self.max_batch == 1 or self.wait_s <= 0:
                    break
                now = time.perf_counter()
                until = fill_deadline if self._preprocessing > 0 else deadline
                if now >= until or self._closed:
                    break
                self._cv.wait(until - now)
            chosen = set(map(id, batch))
            self._queue = deque(r for r in self._queue if id(r) not in chosen and not r.cancelled)
            return batch, plan

    def _select(self) -> tuple[list[_Row], CollatePlan]:
        rows = [r for r in self._queue if not r.cancelled]
        plan = CollatePlan(rows[0].inputs)
        batch = [rows[0]]
        for row in rows[1:]:
            if len(batch) >= self.max_batch:
                break
            if plan.accepts(row.inputs):
                plan.add(row.inputs)
                batch.append(row)
        return batch, plan


# --------------------------------------------------------------------------------- backend


def _resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def _resolve_dtype(spec: str) -> torch.dtype | str:
    if spec == "auto":
        return "auto"  # whatever the checkpoint's config says
    try:
        return _DTYPES[spec]
    except KeyError:
        known = ", ".join(_DTYPES)
        raise ValueError(f"unsupported dtype {spec!r}; use auto or one of {known}") from None


class _TorchCudaProbe(MemoryProbe):
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def read(self) -> tuple[float, str] | None:
        return torch.cuda.memory_allocated(self.device) / (1024 * 1024), "torch_cuda_allocator"


class HFBackend(Backend):
    name = "hf"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        args = dict(config.engine_args)
        ignored = sorted(k for k, v in args.items() if k not in _HF_ENGINE_ARGS and v)
        if ignored:
            logger.warning("hf backend: engine args %s apply to vllm/sglang only", ignored)
        self._args = args
        self._max_batch = int(args.get("max_num_seqs") or config.max_batch_size)
        self._batcher = _Batcher(self._max_batch, config.batch_wait_ms / 1000.0)
        workers = max(1, min(4, os.cpu_count() or 1))
        self._pre_pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="vlmhb-hf-pre", initializer=self._init_thread
        )
        self._thread: threading.Thread | None = None
        self._model: Any = None
        self._processor: Any = None
        self._chat_template: str | None = None
        self._device = torch.device("cpu")
        self._max_context: int | None = None
        self._eos_ids: set[int] = set()
        self._pad_id = 0
        self._gen_config: Any = None
        self._monitor = MemoryMonitor(None)
        self._active_rows = 0  # written by the generation thread only
        self._generated_tokens = 0

    @property
    def device(self) -> str:
        return str(self._device)

    def metrics(self) -> dict[str, float]:
        return {
            "vlmhb_hf_batch_queue_depth": float(len(self._batcher)),
            "vlmhb_hf_active_rows": float(self._active_rows),
            "vlmhb_hf_generated_tokens_total": float(self._generated_tokens),
        }

    def _init_thread(self) -> None:
        if self.config.threads:
            # OpenMP settings are per thread: set them on every thread that runs torch ops.
            torch.set_num_threads(self.config.threads)

    # ------------------------------------------------------------------------------- loading

    async def _load(self) -> None:
        loaded: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._worker, args=(loaded,), name="vlmhb-hf-generate", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(loaded)

    def _load_sync(self) -> None:
        cfg, args = self.config, self._args
        self._init_thread()
        self._device = _resolve_device(cfg.device)
        hf_logging.disable_progress_bar()  # tqdm bars only clutter a server log
        start = time.perf_counter()
        trust = cfg.trust_remote_code or bool(args.get("trust_remote_code"))
        common: dict[str, Any] = {"trust_remote_code": trust}
        if cfg.revision:
            common["revision"] = cfg.revision
        self._processor = AutoProcessor.from_pretrained(
            cfg.model, **common, **(args.get("mm_processor_kwargs") or {})
        )
        dtype = cfg.dtype if cfg.dtype != "auto" else str(args.get("dtype") or "auto")
        model = AutoModelForImageTextToText.from_pretrained(
            cfg.model, dtype=_resolve_dtype(dtype), **common
        )
        self._model = model.to(self._device).eval()
        template = args.get("chat_template")
        if template:
            path = Path(str(template))
            self._chat_template = path.read_text(encoding="utf-8") if path.is_file() else template
        text_config = model.config.get_text_config()
        self._max_context = args.get("max_model_len") or getattr(
            text_config, "max_position_embeddings", None
        )
        tokenizer = self._processor.tokenizer
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        pad = model.generation_config.pad_token_id
        if pad is None:
            pad = tokenizer.pad_token_id
        if pad is None:
            pad = min(self._eos_ids) if self._eos_ids else 0
        self._pad_id = int(pad)
        gen = copy.deepcopy(model.generation_config)
        # Sampling, EOS and lengths are handled per row (_RowSampler, _RowStopper).
        gen.do_sample = False
        gen.temperature = gen.top_p = gen.top_k = gen.min_p = None
        gen.eos_token_id = None
        gen.pad_token_id = self._pad_id
        gen.max_length = None
        gen.min_new_tokens = gen.min_length = None
        self._gen_config = gen
        probe: MemoryProbe
        if self._device.type == "cuda":
            probe = NvmlProbe.create() or _TorchCudaProbe(self._device)
        else:
            probe = RssProbe()
        self._monitor = MemoryMonitor(probe)
        logger.info(
            "loaded %s (%s from %s) on %s in %.2fs; torch threads=%d, max batch=%d, "
            "batch wait=%.1f ms",
            cfg.model_name,
            type(model).__name__,
            cfg.model,
            self._device,
            time.perf_counter() - start,
            torch.get_num_threads(),
            self._max_batch,
            cfg.batch_wait_ms,
        )

    async def close(self) -> None:
        for row in self._batcher.close():
            _dispatch([(row, "err", ServiceUnavailableError("the server is shutting down"), 0.0)])
        self._pre_pool.shutdown(wait=False, cancel_futures=True)
        self._monitor.shutdown()

    # ---------------------------------------------------------------------- generation thread

    def _worker(self, loaded: concurrent.futures.Future[None]) -> None:
        try:
            self._load_sync()
        except BaseException as exc:
            loaded.set_exception(exc)
            return
        loaded.set_result(None)
        while True:
            picked = self._batcher.next_batch()
            if picked is None:
                return
            self._run_batch(*picked)
            self._batcher.batch_done()

    def _run_batch(self, rows: list[_Row], plan: CollatePlan) -> None:
        started = time.perf_counter()
        for row in rows:
            row.gen_start = started
            row.queue_s += started - row.enqueued
            row.batch_size = len(rows)
        stopper = _RowStopper(rows, self._eos_ids)
        self._active_rows = len(rows)
        on_cuda = self._device.type == "cuda"
        try:
            inputs = plan.collate([r.inputs for r in rows], self._pad_id)
            dtype = self._model.dtype
            inputs = {
                k: v.to(self._device, dtype=dtype if v.is_floating_point() else None)
                for k, v in inputs.items()
            }
            if on_cuda:
                torch.cuda.reset_peak_memory_stats(self._device)
            gen = copy.copy(self._gen_config)
            gen.max_new_tokens = max(r.request.max_new_tokens for r in rows)
            processors = LogitsProcessorList()
            if any(r.request.temperature > 0 or r.request.min_tokens for r in rows):
                prompt_len = inputs["input_ids"].shape[1]
                processors.append(_RowSampler(rows, self._eos_ids, prompt_len))
            with torch.inference_mode():
                self._model.generate(
                    **inputs,
                    generation_config=gen,
                    stopping_criteria=StoppingCriteriaList([stopper]),
                    logits_processor=processors,
                )
            if on_cuda:
                torch.cuda.synchronize(self._device)
                peak = torch.cuda.max_memory_allocated(self._device) / (1024 * 1024)
                for row in rows:
                    row.gpu_peak_mb = round(peak, 3)
            stopper.finish("length")
        except BaseException as exc:
            logger.exception("generate failed for a batch of %d", len(rows))
            events = [(r, "err", exc, 0.0) for i, r in enumerate(rows) if not stopper.done[i]]
            stopper.done = [True] * len(rows)
            _dispatch(events)
        finally:
            self._generated_tokens += sum(r.count for r in rows)
            self._active_rows = 0

    # ------------------------------------------------------------------------ preprocessing

    def _preprocess(self, row: _Row, submitted: float) -> None:
        begin = time.perf_counter()
        row.queue_s = begin - submitted
        request = row.request
        chat, images = to_hf_chat(request.messages)
        kwargs: dict[str, Any] = {"add_generation_prompt": True, "tokenize": False}
        if self._chat_template:
            kwargs["chat_template"] = self._chat_template
        try:
            prompt = self._processor.apply_chat_template(chat, **kwargs)
            inputs = self._processor(text=prompt, images=images or None, return_tensors="pt")
        except (TemplateError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise InvalidRequestError(
                f"the model's processor rejected the request: {type(exc).__name__}: {exc}",
                param="messages",
            ) from exc
        row.inputs = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        row.prompt_tokens = int(row.inputs["input_ids"].shape[-1])
        row.preprocess_s = time.perf_counter() - begin
        limit = self._max_context
        if limit and row.prompt_tokens + request.max_new_tokens > limit:
            raise InvalidRequestError(
                f"prompt ({row.prompt_tokens} tokens) + max tokens ({request.max_new_tokens}) "
                f"exceeds the model's context length of {limit}",
                param="messages",
                code="context_length_exceeded",
            )

    # ---------------------------------------------------------------------------- streaming

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        if not self.ready:
            raise ServiceUnavailableError(f"model is not ready (state: {self.state.value})")
        loop = asyncio.get_running_loop()
        row = _Row(request, loop)
        window = self._monitor.open()
        finished = False
        try:
            self._batcher.expect(row)
            try:
                await loop.run_in_executor(
                    self._pre_pool, self._preprocess, row, time.perf_counter()
                )
            except BaseException:
                self._batcher.abandon(row)
                raise
            self._batcher.submit(row)
            text = IncrementalText(self._processor.tokenizer, request.stop)
            count = 0
            first: float | None = None
            last: float | None = None
            reason = "length"
            ended = False
            while not ended:
                # Take every event already waiting: under load, tokens that queued up while
                # the loop was busy go out as one delta (fewer SSE events), with no delay.
                events = [await row.queue.get()]
                while not row.queue.empty():
                    events.append(row.queue.get_nowait())
                pieces: list[str] = []
                for kind, value, stamp in events:
                    if kind == "tok":
                        count += 1
                        first = stamp if first is None else first
                        last = stamp
                        pieces.append(text.push(value))
                        if text.stopped:
                            row.cancelled = True  # the worker drops the row at its next step
                            reason, ended = "stop", True
                            break
                    elif kind == "end":
                        reason, ended = value, True
                        break
                    else:
                        raise value
                delta = "".join(pieces)
                if delta:
                    yield TextDelta(delta)
            tail = text.finish()
            if tail:
                yield TextDelta(tail)
            memory = self._monitor.close(window)
            finished = True
            yield GenerationResult(
                text=text.text,
                finish_reason=reason,  # type: ignore[arg-type]
                prompt_tokens=row.prompt_tokens,
                completion_tokens=count,
                gen_start=row.gen_start,
                finished=time.perf_counter(),
                first_token=first,
                last_token=last,
                queue_s=row.queue_s,
                preprocess_s=row.preprocess_s,
                memory=memory,
                device=str(self._device),
                batch_size=row.batch_size,
                gpu_allocator_peak_mb=row.gpu_peak_mb,
            )
        finally:
            row.cancelled = True
            if not finished:
                self._monitor.close(window)
