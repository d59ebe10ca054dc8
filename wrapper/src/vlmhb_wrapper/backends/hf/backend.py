"""The Hugging Face backend: loading, the generation thread, preprocessing and streaming."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from jinja2 import TemplateError
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    LogitsProcessorList,
    StoppingCriteriaList,
)
from transformers.utils import logging as hf_logging

from vlmhb_wrapper.backends.base import (
    Backend,
    BackendConfig,
    GenerationRequest,
    GenerationResult,
    StreamEvent,
    TextDelta,
)
from vlmhb_wrapper.backends.hf.batcher import Batcher
from vlmhb_wrapper.backends.hf.collate import CollatePlan, to_hf_chat
from vlmhb_wrapper.backends.hf.detokenize import IncrementalText
from vlmhb_wrapper.backends.hf.row_control import RowSampler, RowStopper
from vlmhb_wrapper.backends.hf.rows import Row, dispatch
from vlmhb_wrapper.errors import InvalidRequestError, ServiceUnavailableError
from vlmhb_wrapper.telemetry import MemoryMonitor, MemoryProbe, NvmlProbe, RssProbe

logger = logging.getLogger(__name__)

__all__ = ["HFBackend"]

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
        self._batcher = Batcher(self._max_batch, config.batch_wait_ms / 1000.0)
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
        # Sampling, EOS and lengths are handled per row (RowSampler, RowStopper).
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
            dispatch([(row, "err", ServiceUnavailableError("the server is shutting down"), 0.0)])
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
        try:
            while (picked := self._batcher.next_batch()) is not None:
                self._run_batch(*picked)
                self._batcher.batch_done()
        except Exception as exc:  # a bug: fail loudly (/health 503), never hang the clients
            logger.exception("the generation thread failed")
            self.mark_failed(f"the generation thread failed: {exc!r}")
            for row in self._batcher.close():
                dispatch([(row, "err", ServiceUnavailableError(self.error or "failed"), 0.0)])

    def _run_batch(self, rows: list[Row], plan: CollatePlan) -> None:
        started = time.perf_counter()
        for row in rows:
            row.gen_start = started
            row.queue_s += started - row.enqueued
            row.batch_size = len(rows)
        stopper = RowStopper(rows, self._eos_ids)
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
                processors.append(RowSampler(rows, self._eos_ids, prompt_len))
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
            dispatch(events)
        finally:
            self._generated_tokens += sum(r.count for r in rows)
            self._active_rows = 0

    # ------------------------------------------------------------------------ preprocessing

    def _preprocess(self, row: Row, submitted: float) -> None:
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
        row = Row(request, loop)
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
