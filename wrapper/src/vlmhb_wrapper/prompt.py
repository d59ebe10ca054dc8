"""OpenAI chat request -> backend-neutral :class:`GenerationRequest` (validation + images)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from vlmhb_wrapper.backends.base import (
    Backend,
    GenerationRequest,
    ImageSegment,
    PromptMessage,
    TextSegment,
)
from vlmhb_wrapper.errors import InvalidRequestError
from vlmhb_wrapper.media import MediaLoader
from vlmhb_wrapper.schemas import ChatCompletionRequest, TextPart

__all__ = ["GenerationDefaults", "build_generation_request"]

_ROLE_MAP = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class GenerationDefaults:
    default_max_tokens: int = 512
    max_new_tokens_limit: int = 4096
    max_images_per_request: int = 16


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

    Blocking (image decoding): call it from a worker thread.
    """
    _check_options(req, backend)
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
    stops = req.stop_sequences()
    if len(stops) > 4:
        raise InvalidRequestError("at most 4 stop sequences are allowed", param="stop")

    image_limit = defaults.max_images_per_request
    if backend.max_images_per_request is not None:
        image_limit = min(image_limit, backend.max_images_per_request)
    media_start = time.perf_counter()
    n_images = 0
    messages: list[PromptMessage] = []
    for message in req.messages:
        parts: list[TextSegment | ImageSegment] = []
        if isinstance(message.content, str):
            parts.append(TextSegment(message.content))
        elif message.content is not None:
            for part in message.content:
                if isinstance(part, TextPart):
                    parts.append(TextSegment(part.text))
                    continue
                n_images += 1
                if n_images > image_limit:
                    raise InvalidRequestError(
                        f"at most {image_limit} image(s) per request on this server",
                        param="messages",
                        code="too_many_images",
                    )
                parts.append(media.load(part.image_url.url, decode=backend.needs_decoded_images))
        messages.append(PromptMessage(role=_ROLE_MAP[message.role], parts=tuple(parts)))  # type: ignore[arg-type]
    media_ms = (time.perf_counter() - media_start) * 1000.0

    response_format = (
        req.response_format.model_dump(by_alias=True, exclude_none=True)
        if req.response_format is not None and req.response_format.type != "text"
        else None
    )
    return GenerationRequest(
        messages=tuple(messages),
        max_new_tokens=max_new,
        temperature=0.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        seed=req.seed,
        stop=stops,
        ignore_eos=req.ignore_eos,
        min_tokens=req.min_tokens,
        presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        response_format=response_format,
        max_tokens_field=(
            "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        ),
        arrival=arrival,
        media_ms=media_ms,
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
    penalties = (req.presence_penalty or 0.0, req.frequency_penalty or 0.0)
    if any(penalties) and not backend.supports_penalties:
        raise InvalidRequestError(
            f"presence/frequency penalties are not supported by the {backend.name} backend",
            param="presence_penalty" if penalties[0] else "frequency_penalty",
            code="unsupported",
        )
