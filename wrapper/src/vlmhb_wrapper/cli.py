"""``vlmhb-wrapper serve --backend hf|vllm|sglang|openai --model M [--port N] ...``

The same command line is what the pipeline's ``predict`` rule runs
(``vlmhyperbench.inference.launcher.wrapper_command``).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import logging.config
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from vlmhb_wrapper import __version__
from vlmhb_wrapper.backends import available_backends, resolve_backend
from vlmhb_wrapper.backends.base import BackendConfig
from vlmhb_wrapper.media import MediaLimits, MediaLoader
from vlmhb_wrapper.prompt import GenerationDefaults
from vlmhb_wrapper.remote_media import PrivateHosts
from vlmhb_wrapper.security import register_secret

__all__ = ["build_config", "build_parser", "log_config", "main"]

logger = logging.getLogger("vlmhb_wrapper.cli")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        # Port 0 would bind a random port that nobody could discover: the caller must pick one.
        raise argparse.ArgumentTypeError(f"port must be in 1..65535, got {value}")
    return value


def _private_hosts(text: str) -> list[str]:
    try:
        PrivateHosts.parse([text])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return [part.strip() for part in text.split(",")]


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlmhb-wrapper", description="OpenAI-compatible VLM server with telemetry."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve a model over HTTP")
    _add_model_arguments(serve)
    _add_limit_arguments(serve)
    _add_backend_arguments(serve)
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--no-access-log", action="store_true", help="do not log one line per HTTP request"
    )
    return parser


def _add_model_arguments(serve: argparse.ArgumentParser) -> None:
    """What is served, where, and how long a reply may be."""
    serve.add_argument(
        "--backend",
        default="hf",
        help=f"backend name (built in: {', '.join(available_backends())}; more through the "
        "`vlmhyperbench.backends` entry-point group; default: hf)",
    )
    serve.add_argument(
        "--model", required=True, help="model folder or hub id (openai: the upstream's model)"
    )
    serve.add_argument("--revision", default=None, help="hub revision (commit, tag, branch)")
    serve.add_argument(
        "--served-model-name",
        default=None,
        help="name clients must send as `model` (default: the --model value)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument(
        "--engine-args-json",
        type=_json_object,
        default={},
        metavar="JSON",
        help="the model entry's engine_args (dtype, max_model_len, gpu_memory_utilization, "
        "mem_fraction_static, limit_mm_per_prompt, mm_processor_kwargs, max_num_seqs, "
        "tensor_parallel_size, trust_remote_code, chat_template, extra_args)",
    )
    serve.add_argument("--max-new-tokens-limit", type=_positive_int, default=4096)
    serve.add_argument("--default-max-tokens", type=_positive_int, default=512)


def _add_limit_arguments(serve: argparse.ArgumentParser) -> None:
    """Who may call, which media it may read, and how big a request may be."""
    security = serve.add_argument_group("security and limits")
    security.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=None,
        help="require the key in $VAR as `Authorization: Bearer` or `X-API-Key` on /v1 routes",
    )
    security.add_argument(
        "--allowed-media-root",
        metavar="DIR",
        type=Path,
        action="append",
        default=[],
        help="directory file:// image URLs may point into (repeatable; none: file:// is off)",
    )
    security.add_argument(
        "--allow-remote-media",
        action="store_true",
        help="let the server fetch http(s) image URLs (off by default) from public addresses",
    )
    security.add_argument(
        "--allow-private-media-hosts",
        metavar="HOST[,HOST...]",
        type=_private_hosts,
        action="extend",
        default=[],
        help="with --allow-remote-media: host names, IPs or CIDRs that may be fetched although "
        "loopback, private or link-local (repeatable; none: only public addresses)",
    )
    security.add_argument(
        "--max-request-bytes",
        type=_positive_int,
        default=64 * 1024 * 1024,
        help="request body limit, enforced while reading (default: 64 MiB)",
    )
    security.add_argument(
        "--max-request-chars",
        type=_positive_int,
        default=GenerationDefaults.max_request_chars,
        help="characters of text in all messages of a request, checked before tokenising "
        "(default: %(default)s)",
    )
    security.add_argument("--max-images-per-request", type=_positive_int, default=16)
    security.add_argument(
        "--max-concurrent-requests",
        type=_positive_int,
        default=None,
        metavar="N",
        help="generate at most N chat requests at once, whichever clients send them; the "
        "others wait in arrival order and report the wait in queue_ms (default: no limit)",
    )
    security.add_argument(
        "--max-image-bytes", type=_positive_int, default=MediaLimits.max_image_bytes
    )
    security.add_argument(
        "--max-image-pixels",
        type=_positive_int,
        default=MediaLimits.max_image_pixels,
        help="width x height of one image, from its header (default: %(default)s)",
    )
    security.add_argument(
        "--max-request-pixels",
        type=_positive_int,
        default=MediaLimits.max_request_pixels,
        help="width x height of all images of a request, from their headers, before any is "
        "decoded (default: %(default)s)",
    )


def _add_backend_arguments(serve: argparse.ArgumentParser) -> None:
    """Each backend's own settings: hf, vllm / sglang, openai."""
    hf = serve.add_argument_group("hf backend")
    hf.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="hf: torch intra-op threads; tesseract: engines, i.e. pages recognised at once",
    )
    hf.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    hf.add_argument(
        "--dtype",
        default="auto",
        help="auto | float32 | float16 | bfloat16 (auto: engine args, else the checkpoint)",
    )
    hf.add_argument("--trust-remote-code", action="store_true")
    hf.add_argument(
        "--max-batch-size",
        type=_positive_int,
        default=8,
        help="dynamic batching: most requests per generate() (1: one at a time)",
    )
    hf.add_argument(
        "--batch-wait-ms",
        type=_non_negative_float,
        default=5.0,
        help="dynamic batching: how long the first request of a batch waits for company",
    )

    engine = serve.add_argument_group("vllm / sglang backends")
    engine.add_argument(
        "--engine-launcher",
        default=None,
        metavar="CMD",
        help="program that replaces `vllm` / `python -m sglang.launch_server` (shell words)",
    )
    engine.add_argument(
        "--engine-port", type=_port, default=None, help="engine port (default: a free one)"
    )
    engine.add_argument("--engine-startup-timeout", type=float, default=1800.0, metavar="S")
    engine.add_argument(
        "--engine-health-interval",
        type=_non_negative_float,
        default=10.0,
        metavar="S",
        help="poll the running engine's /health this often (0: never)",
    )
    engine.add_argument(
        "--engine-health-failures",
        type=_positive_int,
        default=3,
        metavar="N",
        help="this many failed polls in a row: the engine hangs; it is stopped, the wrapper "
        "answers 503 with its last log lines",
    )

    upstream = serve.add_argument_group("openai backend")
    upstream.add_argument("--upstream-base-url", default=None, metavar="URL")
    upstream.add_argument(
        "--upstream-api-key-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the upstream's API key",
    )
    upstream.add_argument(
        "--upstream-model", default=None, help="model name at the upstream (default: --model)"
    )
    upstream.add_argument("--upstream-timeout", type=float, default=600.0, metavar="S")


def _secret_from_env(var: str | None, what: str) -> str | None:
    if not var:
        return None
    value = os.environ.get(var) or None
    if value is None:
        sys.exit(f"vlmhb-wrapper: environment variable {var} ({what}) is unset or empty")
    register_secret(value)
    return value


def build_config(args: argparse.Namespace, upstream_key: str | None) -> BackendConfig:
    secret_vars = tuple(v for v in (args.api_key_env, args.upstream_api_key_env) if v)
    return BackendConfig(
        model=args.model,
        served_model_name=args.served_model_name,
        revision=args.revision,
        engine_args=args.engine_args_json,
        max_new_tokens_limit=args.max_new_tokens_limit,
        threads=args.threads,
        device=args.device,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
        max_batch_size=args.max_batch_size,
        batch_wait_ms=args.batch_wait_ms,
        engine_launcher=tuple(shlex.split(args.engine_launcher)) if args.engine_launcher else None,
        engine_port=args.engine_port,
        engine_startup_timeout_s=args.engine_startup_timeout,
        engine_health_interval_s=args.engine_health_interval,
        engine_health_failures=args.engine_health_failures,
        upstream_base_url=args.upstream_base_url,
        upstream_api_key=upstream_key,
        upstream_model=args.upstream_model,
        upstream_timeout_s=args.upstream_timeout,
        secret_env_vars=secret_vars,
    )


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's own format (its access log lines are what tools count), plus our loggers,
    every handler behind the secret-redacting filter."""
    level = level.upper()
    redact = ["redact"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "vlmhb_wrapper.security.RedactSecretsFilter"}},
        "formatters": {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
                "use_colors": False,
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                "use_colors": False,
            },
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
                "filters": redact,
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "stream": "ext://sys.stdout",
                "filters": redact,
            },
            "plain": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
                "filters": redact,
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
            "vlmhb_wrapper": {"handlers": ["plain"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["plain"], "level": "WARNING"},
    }


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from vlmhb_wrapper.app import create_app

    api_key = _secret_from_env(args.api_key_env, "the wrapper's API key")
    upstream_key = _secret_from_env(args.upstream_api_key_env, "the upstream's API key")
    try:
        backend_cls = resolve_backend(args.backend)
    except (KeyError, TypeError) as exc:
        sys.exit(f"vlmhb-wrapper: {exc.args[0]}")
    try:
        backend = backend_cls(build_config(args, upstream_key))
    except ValueError as exc:
        sys.exit(f"vlmhb-wrapper: backend {args.backend}: {exc}")
    app = create_app(
        backend,
        api_key=api_key,
        media_loader=MediaLoader(
            allowed_media_roots=tuple(args.allowed_media_root),
            limits=MediaLimits(
                max_image_bytes=args.max_image_bytes,
                max_image_pixels=args.max_image_pixels,
                max_request_pixels=args.max_request_pixels,
            ),
            allow_remote=args.allow_remote_media,
            allowed_private_hosts=tuple(args.allow_private_media_hosts),
        ),
        defaults=GenerationDefaults(
            default_max_tokens=min(args.default_max_tokens, args.max_new_tokens_limit),
            max_new_tokens_limit=args.max_new_tokens_limit,
            max_images_per_request=args.max_images_per_request,
            max_request_chars=args.max_request_chars,
        ),
        max_request_bytes=args.max_request_bytes,
        max_concurrent_requests=args.max_concurrent_requests,
    )
    config = log_config(args.log_level)
    logging.config.dictConfig(config)
    if not _is_loopback(args.host) and api_key is None:
        logger.warning(
            "binding %s without an API key: anyone who can reach this port can use the model",
            args.host,
        )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=config,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        workers=1,
        timeout_graceful_shutdown=5,
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args)
    else:  # pragma: no cover - argparse enforces the choices
        raise SystemExit(f"unknown command {args.command!r}")
