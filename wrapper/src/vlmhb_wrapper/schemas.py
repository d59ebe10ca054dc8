"""Request/response models mirroring the OpenAI Chat Completions API (the subset we serve).

Unknown request fields are ignored (clients such as ``openai`` may send fields we do not model);
fields we model but a backend cannot honour (``n > 1``, ``logprobs``, ``tools``, structured
output on a backend without it) are rejected explicitly with a 400 instead of being silently
dropped. Two vLLM sampling extensions are modelled as well (``ignore_eos``, ``min_tokens``):
they make token counts deterministic in tests and benchmarks, and pass through to vLLM/SGLang.
vLLM's ``mm_processor_kwargs`` (arguments of the model's multimodal processor, e.g. Qwen2.5-VL's
``max_pixels``, for this request only) passes through to vLLM; every other backend refuses a
request that carries it (400), since it would be ignored there.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# ---------------------------------------------------------------------------------- request


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImageURL(_Lenient):
    url: str = Field(description="data:image/...;base64,... or file:// under an allowed root")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(_Lenient):
    include_usage: bool | None = None


class JSONSchemaSpec(_Lenient):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatText(_Lenient):
    type: Literal["text"]


class ResponseFormatJSONObject(_Lenient):
    type: Literal["json_object"]


class ResponseFormatJSONSchema(_Lenient):
    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema,
    Field(discriminator="type"),
]


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    user: str | None = None
    # vLLM / SGLang sampling extensions (sent by clients through ``extra_body``).
    ignore_eos: bool = False
    min_tokens: int = Field(default=0, ge=0)
    # vLLM extension: the multimodal processor's arguments for this request (vllm only).
    mm_processor_kwargs: dict[str, Any] | None = None

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in stops if s)

    def requested_max_tokens(self) -> int | None:
        """``max_completion_tokens`` (current OpenAI name) wins over legacy ``max_tokens``."""
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


# --------------------------------------------------------------------------------- response

MemorySource = Literal[
    "gpu_nvml_process", "gpu_nvml_device", "torch_cuda_allocator", "process_rss", "unavailable"
]


class Performance(BaseModel):
    """Server-side per-request telemetry (all times in milliseconds, wall clock).

    The clock starts when the wrapper has parsed the request body (``t0``).
    """

    latency_ms: float = Field(description="t0 -> the last token was produced and decoded")
    ttft_ms: float | None = Field(
        description="t0 -> the first generated token (hf: produced by generate; proxied "
        "backends: the first upstream chunk with non-empty content); null when none came"
    )
    tpot_ms: float | None = Field(
        description="mean time per output token after the first; null for < 2 tokens"
    )
    queue_ms: float = Field(
        description="time this request waited before its generation started (hf: for a "
        "preprocessing worker and for its batch; proxied: inside the wrapper only)"
    )
    media_ms: float = Field(description="fetching, checking and decoding the request's images")
    preprocess_ms: float = Field(description="chat template + processor (tokenize, pixels)")
    generate_ms: float = Field(description="generation start -> this request's last token")
    prompt_tokens: int
    completion_tokens: int
    tokens_per_s: float = Field(description="completion_tokens / generate time")
    peak_memory_mb: float | None = Field(
        description="peak memory while this request ran; see memory_source for what it is"
    )
    memory_source: MemorySource = Field(
        description="gpu_nvml_process: GPU memory of the serving process(es) from NVML; "
        "gpu_nvml_device: whole-GPU used memory from NVML (processes not visible); "
        "torch_cuda_allocator: torch's allocator peak; process_rss: resident memory of the "
        "serving process(es); unavailable: an external endpoint"
    )
    device: str
    backend: str
    batch_size: int | None = Field(
        default=None, description="hf: size of the generate() batch this request ran in"
    )
    gpu_allocator_peak_mb: float | None = Field(
        default=None, description="hf on CUDA: torch allocator peak during this request's batch"
    )
    upstream: dict[str, Any] | None = Field(
        default=None, description="proxied backends: the upstream's own telemetry, if it sent any"
    )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "function_call"]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    performance: Performance


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    logprobs: None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    """One SSE event. With ``stream_options.include_usage`` every chunk carries ``usage: null``
    except an extra last one with ``choices: []`` and the usage; ``performance`` is only on the
    last chunk of the stream."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    performance: Performance | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "vlmhyperbench"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
