"""OpenAI chat request -> backend-neutral :class:`GenerationRequest` (validation + images)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from vlmhb_wrapper.backends.base import (
    Backend,
    GenerationRequest,
    PromptMessage,
    TextSegment,
)
from vlmhb_wrapper.errors import InvalidRequestError, PayloadTooLargeError
from vlmhb_wrapper.media import MediaLoader
from vlmhb_wrapper.schemas import ChatCompletionRequest, TextPart

__all__ = ["GenerationDefaults", "build_generation_request", "check_raw_text_budget"]

_ROLE_MAP = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class GenerationDefaults:
    default_max_tokens: int = 512
    max_new_tokens_limit: int = 4096
    max_images_per_request: int = 16
    #: Characters of text in all messages of a request (--max-request-chars), checked before
    #: anything is tokenised: a 1M-character prompt is far over any model's context.
    max_request_chars: int = 1_000_000


def build_generation_request(
    req: ChatCompletionRequest,
    media: MediaLoader,
    defaults: GenerationDefaults,
    backend: Backend,
    *,
    arrival: float,
) -> GenerationRequest:
    """Validate the options against the backend's abilities and check every image; raises
    ``InvalidRequestError`` (400) / ``PayloadTooLargeError`` (413).

    Blocking (image decoding): call it from a worker thread. The cheap checks come first: the
    text budget, then every image's header (bytes, pixels), and only then decoding.
    """
    _check_text_budget(req, defaults.max_request_chars)
    _check_options(req, backend)
    max_new = _max_new_tokens(req, defaults)
    stops = _stop_sequences(req)
    media_start = time.perf_counter()
    messages = _load_messages(req, media, backend, _image_limit(defaults, backend))
    media_ms = (time.perf_counter() - media_start) * 1000.0
    return GenerationRequest(
        messages=messages,
        max_new_tokens=max_new,
        temperature=0.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        seed=req.seed,
        stop=stops,
        ignore_eos=req.ignore_eos,
        min_tokens=req.min_tokens,
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        response_format=_response_format(req),
        mm_processor_kwargs=req.mm_processor_kwargs or None,
        max_tokens_field=(
            "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        ),
        arrival=arrival,
        media_ms=media_ms,
    )


def _max_new_tokens(req: ChatCompletionRequest, defaults: GenerationDefaults) -> int:
    """The request's max tokens (or the server's default), within the server's limit and not
    below ``min_tokens``."""
    max_new = req.requested_max_tokens() or defaults.default_max_tokens
    if max_new > defaults.max_new_tokens_limit:
        raise InvalidRequestError(
            f"max tokens {max_new} exceeds this server's limit of {defaults.max_new_tokens_limit}",
            param="max_completion_tokens" if req.max_completion_tokens else "max_tokens",
        )
    if req.min_tokens > max_new:
        raise InvalidRequestError(
            f"min_tokens ({req.min_tokens}) is larger than max tokens ({max_new})",
            param="min_tokens",
        )
    return max_new


def _stop_sequences(req: ChatCompletionRequest) -> tuple[str, ...]:
    stops = req.stop_sequences()
    if len(stops) > 4:
        raise InvalidRequestError("at most 4 stop sequences are allowed", param="stop")
    return stops


@dataclass(frozen=True)
class _ImageLimit:
    """The most images per request, and the setting that says so (named in the refusal)."""

    count: int
    set_by: str


def _image_limit(defaults: GenerationDefaults, backend: Backend) -> _ImageLimit:
    engine_limit = backend.max_images_per_request
    if engine_limit is not None and engine_limit < defaults.max_images_per_request:
        return _ImageLimit(engine_limit, "the model's engine args")
    return _ImageLimit(defaults.max_images_per_request, "--max-images-per-request")


def _load_messages(
    req: ChatCompletionRequest, media: MediaLoader, backend: Backend, limit: _ImageLimit
) -> tuple[PromptMessage, ...]:
    """The messages with their images loaded (checked; decoded for in-process backends)."""
    urls, layout = _message_layout(req, limit)
    images = media.load_many(urls, decode=backend.needs_decoded_images)
    return tuple(
        PromptMessage(
            role=role,  # type: ignore[arg-type]
            parts=tuple(images[p] if isinstance(p, int) else p for p in parts),
        )
        for role, parts in layout
    )


def _message_layout(
    req: ChatCompletionRequest, limit: _ImageLimit
) -> tuple[list[str], list[tuple[str, list[TextSegment | int]]]]:
    """Every image URL in order, and each message as (role, parts), an image part being its
    position in the URLs; refuses more images than ``limit``."""
    urls: list[str] = []
    layout: list[tuple[str, list[TextSegment | int]]] = []
    for message in req.messages:
        parts: list[TextSegment | int] = []
        if isinstance(message.content, str):
            parts.append(TextSegment(message.content))
        elif message.content is not None:
            for part in message.content:
                if isinstance(part, TextPart):
                    parts.append(TextSegment(part.text))
                    continue
                if len(urls) >= limit.count:
                    raise InvalidRequestError(
                        f"at most {limit.count} image(s) per request on this server "
                        f"(set with {limit.set_by})",
                        param="messages",
                        code="too_many_images",
                    )
                parts.append(len(urls))
                urls.append(part.image_url.url)
        layout.append((_ROLE_MAP[message.role], parts))
    return urls, layout


def _response_format(req: ChatCompletionRequest) -> dict[str, Any] | None:
    if req.response_format is None or req.response_format.type == "text":
        return None
    return req.response_format.model_dump(by_alias=True, exclude_none=True)


#: The most bytes one character of text takes in a JSON body (a ``\uXXXX`` surrogate pair).
_MAX_JSON_BYTES_PER_CHAR = 12
_SLACK_BYTES = 64 * 1024


def check_raw_text_budget(raw: bytes, limit: int) -> None:
    """Before the body is parsed: if its bytes outside the image data URLs could not hold
    fewer than ``limit`` characters, refuse (413) without building any string. Finding the
    ``"data:`` strings is a byte search; anything closer to the limit is counted exactly after
    parsing (:func:`build_generation_request`)."""
    outside = len(raw)
    if outside <= limit * _MAX_JSON_BYTES_PER_CHAR + _SLACK_BYTES:
        return
    start = raw.find(b'"data:')
    while start != -1:
        end = raw.find(b'"', start + 1)
        if end == -1:
            break
        outside -= end - start
        start = raw.find(b'"data:', end + 1)
    if outside > limit * _MAX_JSON_BYTES_PER_CHAR + _SLACK_BYTES:
        raise PayloadTooLargeError(
            f"the request has {outside} bytes of JSON outside its images: more text than the "
            f"limit of {limit} characters per request allows (set with --max-request-chars); "
            "nothing was parsed or tokenised",
            param="messages",
            code="text_too_large",
        )


def _check_text_budget(req: ChatCompletionRequest, limit: int) -> None:
    chars = 0
    for message in req.messages:
        if isinstance(message.content, str):
            chars += len(message.content)
        elif message.content is not None:
            chars += sum(len(p.text) for p in message.content if isinstance(p, TextPart))
    if chars > limit:
        raise PayloadTooLargeError(
            f"the request's text has {chars} characters; limit is {limit} characters per "
            "request (set with --max-request-chars); nothing was tokenised",
            param="messages",
            code="text_too_large",
        )


def _check_options(req: ChatCompletionRequest, backend: Backend) -> None:
    if req.n != 1:
        raise InvalidRequestError("only n=1 is supported", param="n", code="unsupported_value")
    if req.logprobs or req.top_logprobs:
        raise InvalidRequestError(
            "logprobs are not supported by this server", param="logprobs", code="unsupported"
        )
    if req.tools:
        raise InvalidRequestError(
            "tools are not supported by this server", param="tools", code="unsupported"
        )
    fmt = req.response_format
    if fmt is not None and fmt.type != "text" and not backend.supports_structured_output:
        raise InvalidRequestError(
            f"response_format {fmt.type} is not supported by the {backend.name} backend "
            "(structured output needs vllm, sglang or an openai upstream)",
            param="response_format",
            code="unsupported_response_format",
        )
    if req.mm_processor_kwargs and not backend.supports_mm_processor_kwargs:
        raise InvalidRequestError(
            f"mm_processor_kwargs is not supported per request by the {backend.name} backend "
            "(only vllm takes multimodal processor arguments per request; hf takes them in the "
            "model's engine_args, applied when it loads)",
            param="mm_processor_kwargs",
            code="unsupported",
        )
    penalties = (req.presence_penalty or 0.0, req.frequency_penalty or 0.0)
    if any(penalties) and not backend.supports_penalties:
        raise InvalidRequestError(
            f"presence/frequency penalties are not supported by the {backend.name} backend",
            param="presence_penalty" if penalties[0] else "frequency_penalty",
            code="unsupported",
        )
