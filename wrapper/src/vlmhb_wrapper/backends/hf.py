"""In-process Hugging Face ``transformers`` backend (AutoProcessor + AutoModelForImageTextToText).

Generation is serialized: one dedicated worker thread runs loading and every ``generate`` call,
so requests queue in FIFO order, the event loop stays responsive, and per-request telemetry
(TTFT, peak CUDA memory) is not polluted by concurrent work. Queue time is reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from jinja2 import TemplateError
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.generation.streamers import BaseStreamer
from transformers.utils import logging as hf_logging

from vlmhb_wrapper.backends.base import (
    Backend,
    BackendConfig,
    GenerationRequest,
    GenerationResult,
    ImageSegment,
    PromptMessage,
    Timings,
)
from vlmhb_wrapper.errors import InvalidRequestError, ServiceUnavailableError
from vlmhb_wrapper.telemetry import ms, process_peak_rss_mb

logger = logging.getLogger(__name__)

__all__ = ["HFBackend", "TokenTimingStreamer", "to_hf_chat"]

_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class TokenTimingStreamer(BaseStreamer):
    """Records when ``generate`` emits tokens.

    ``generate`` calls :meth:`put` once with the prompt ids, then once per decoding step with
    the new token(s); :meth:`end` when done. The prompt call is recognised by its size (so a
    model whose ``generate`` skips it cannot shift TTFT by a token). ``on_tokens`` (optional)
    receives every new-token batch as a list of ids - the hook for a future SSE endpoint.
    """

    def __init__(
        self, prompt_tokens: int, on_tokens: Callable[[list[int]], None] | None = None
    ) -> None:
        self._prompt_tokens = prompt_tokens
        self._seen_prompt = False
        self.first_token_time: float | None = None
        self.end_time: float | None = None
        self.new_tokens = 0
        self._on_tokens = on_tokens

    def put(self, value: torch.Tensor) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
            if value.numel() == self._prompt_tokens and self._prompt_tokens > 1:
                return
        if self.first_token_time is None:
            self.first_token_time = time.perf_counter()
        ids = value.reshape(-1).tolist()
        self.new_tokens += len(ids)
        if self._on_tokens is not None:
            self._on_tokens(ids)

    def end(self) -> None:
        self.end_time = time.perf_counter()


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
        raise ValueError(
            f"unsupported dtype {spec!r}; use auto or one of {list(_DTYPES)}"
        ) from None


class HFBackend(Backend):
    name = "hf"

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vlmhb-hf")
        self._model: Any = None
        self._processor: Any = None
        self._device = torch.device("cpu")
        self._max_context: int | None = None
        self._eos_ids: set[int] = set()

    # ------------------------------------------------------------------------------- loading

    async def _load(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load_sync)

    def _load_sync(self) -> None:
        cfg = self.config
        if cfg.threads:
            # Called on the worker thread that will run generate (OpenMP settings are per-thread).
            torch.set_num_threads(cfg.threads)
        self._device = _resolve_device(cfg.device)
        hf_logging.disable_progress_bar()  # tqdm bars only clutter a server log
        start = time.perf_counter()
        self._processor = AutoProcessor.from_pretrained(
            cfg.model, trust_remote_code=cfg.trust_remote_code
        )
        model = AutoModelForImageTextToText.from_pretrained(
            cfg.model, dtype=_resolve_dtype(cfg.dtype), trust_remote_code=cfg.trust_remote_code
        )
        self._model = model.to(self._device).eval()
        text_config = model.config.get_text_config()
        self._max_context = getattr(text_config, "max_position_embeddings", None)
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = self._processor.tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        logger.info(
            "loaded %s (%s) on %s in %.2fs, torch threads=%d",
            cfg.model,
            type(model).__name__,
            self._device,
            time.perf_counter() - start,
            torch.get_num_threads(),
        )

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------------------- generation

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if not self.ready:
            raise ServiceUnavailableError(f"model is not ready (state: {self.state})")
        enqueued = time.perf_counter()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._generate_sync, request, enqueued)

    def _generate_sync(self, request: GenerationRequest, enqueued: float) -> GenerationResult:
        started = time.perf_counter()
        on_cuda = self._device.type == "cuda"
        if on_cuda:
            torch.cuda.reset_peak_memory_stats(self._device)

        inputs = self._preprocess(request)
        prompt_tokens = int(inputs["input_ids"].shape[-1])
        if self._max_context and prompt_tokens + request.max_new_tokens > self._max_context:
            raise InvalidRequestError(
                f"prompt ({prompt_tokens} tokens) + max tokens ({request.max_new_tokens}) "
                f"exceeds the model's context length of {self._max_context}",
                param="messages",
                code="context_length_exceeded",
            )

        streamer = TokenTimingStreamer(prompt_tokens)
        gen_kwargs = self._generation_kwargs(request)
        gen_start = time.perf_counter()
        with torch.inference_mode():
            output = self._model.generate(**inputs, streamer=streamer, **gen_kwargs)
        if on_cuda:
            torch.cuda.synchronize(self._device)
        gen_end = time.perf_counter()

        sequences = output if isinstance(output, torch.Tensor) else output.sequences
        new_ids = sequences[0, prompt_tokens:].tolist()
        text, finish_reason = self._decode(new_ids, request)
        finished = time.perf_counter()

        completion_tokens = len(new_ids)
        first = streamer.first_token_time
        timings = Timings(
            latency_ms=ms(finished - request.arrival),
            ttft_ms=ms(first - request.arrival) if first is not None else None,
            tpot_ms=(
                ms((gen_end - first) / (completion_tokens - 1))
                if first is not None and completion_tokens > 1
                else None
            ),
            queue_ms=ms(started - enqueued),
            media_ms=round(request.media_ms, 3),
            preprocess_ms=ms(gen_start - started),
            generate_ms=ms(gen_end - gen_start),
        )
        if on_cuda:
            peak_mb = torch.cuda.max_memory_allocated(self._device) / (1024 * 1024)
            source = "cuda"
        else:
            peak_mb, source = process_peak_rss_mb(), "process_rss"
        return GenerationResult(
            text=text,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            timings=timings,
            peak_memory_mb=round(peak_mb, 3),
            memory_source=source,  # type: ignore[arg-type]
            device=str(self._device),
        )

    def _preprocess(self, request: GenerationRequest) -> Any:
        """Chat template + processor; failures here are caused by the request -> HTTP 400."""
        chat, images = to_hf_chat(request.messages)
        try:
            prompt = self._processor.apply_chat_template(
                chat, add_generation_prompt=True, tokenize=False
            )
            inputs = self._processor(text=prompt, images=images or None, return_tensors="pt")
        except (TemplateError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise InvalidRequestError(
                f"the model's processor rejected the request: {type(exc).__name__}: {exc}",
                param="messages",
            ) from exc
        # Floating tensors (pixel values) are cast to the model dtype; ids only move device.
        return inputs.to(device=self._device, dtype=self._model.dtype)

    def _generation_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": request.max_new_tokens}
        if request.temperature > 0:
            kwargs.update(do_sample=True, temperature=request.temperature, top_p=request.top_p)
            if request.seed is not None:
                torch.manual_seed(request.seed)  # safe: generation is serialized
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs.update(stop_strings=list(request.stop), tokenizer=self._processor.tokenizer)
        if self._model.generation_config.pad_token_id is None:
            tok = self._processor.tokenizer
            kwargs["pad_token_id"] = (
                tok.pad_token_id
                if tok.pad_token_id is not None
                else (next(iter(self._eos_ids), None))
            )
        return kwargs

    def _decode(self, new_ids: list[int], request: GenerationRequest) -> tuple[str, Any]:
        text = self._processor.tokenizer.decode(new_ids, skip_special_tokens=True)
        cut = min((i for s in request.stop if (i := text.find(s)) >= 0), default=-1)
        if cut >= 0:
            return text[:cut], "stop"
        if new_ids and new_ids[-1] in self._eos_ids:
            return text, "stop"
        if len(new_ids) >= request.max_new_tokens:
            return text, "length"
        return text, "stop"
