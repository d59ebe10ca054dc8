"""``vlmhb-wrapper serve --backend hf --model PATH --port N ...``"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from vlmhb_wrapper import __version__
from vlmhb_wrapper.backends import available_backends, resolve_backend
from vlmhb_wrapper.backends.base import BackendConfig
from vlmhb_wrapper.media import MediaLimits, MediaLoader
from vlmhb_wrapper.prompt import GenerationDefaults

__all__ = ["build_parser", "main"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        # Port 0 would bind a random port that nobody could discover: the caller must pick one.
        raise argparse.ArgumentTypeError(f"port must be in 1..65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlmhb-wrapper", description="OpenAI-compatible VLM server with telemetry."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve a model over HTTP")
    serve.add_argument("--backend", default="hf", help="backend name (default: hf)")
    serve.add_argument("--model", required=True, help="model folder (or backend-specific id)")
    serve.add_argument(
        "--served-model-name",
        default=None,
        help="name clients must send as `model` (default: the --model value)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    serve.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch intra-op threads (default: torch's choice)",
    )
    serve.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    serve.add_argument("--dtype", default="auto", help="auto | float32 | float16 | bfloat16")
    serve.add_argument("--trust-remote-code", action="store_true")
    serve.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=None,
        help="require `Authorization: Bearer $VAR` on /v1 routes",
    )
    serve.add_argument(
        "--allowed-media-root",
        metavar="DIR",
        type=Path,
        action="append",
        default=[],
        help="directory file:// image URLs may point into (repeatable)",
    )
    serve.add_argument("--max-new-tokens-limit", type=_positive_int, default=4096)
    serve.add_argument("--default-max-tokens", type=_positive_int, default=512)
    serve.add_argument("--max-images-per-request", type=_positive_int, default=16)
    serve.add_argument("--max-image-bytes", type=_positive_int, default=MediaLimits.max_image_bytes)
    serve.add_argument(
        "--max-image-pixels", type=_positive_int, default=MediaLimits.max_image_pixels
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from vlmhb_wrapper.app import create_app

    api_key: str | None = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env) or None
        if api_key is None:
            sys.exit(f"vlmhb-wrapper: environment variable {args.api_key_env} is unset or empty")
    try:
        backend_cls = resolve_backend(args.backend)
    except KeyError as exc:
        sys.exit(f"vlmhb-wrapper: {exc.args[0]}")
    config = BackendConfig(
        model=args.model,
        served_model_name=args.served_model_name,
        threads=args.threads,
        device=args.device,
        dtype=args.dtype,
        max_new_tokens_limit=args.max_new_tokens_limit,
        trust_remote_code=args.trust_remote_code,
    )
    app = create_app(
        backend_cls(config),
        api_key=api_key,
        media_loader=MediaLoader(
            allowed_media_roots=tuple(args.allowed_media_root),
            limits=MediaLimits(
                max_image_bytes=args.max_image_bytes, max_image_pixels=args.max_image_pixels
            ),
        ),
        defaults=GenerationDefaults(
            default_max_tokens=min(args.default_max_tokens, args.max_new_tokens_limit),
            max_new_tokens_limit=args.max_new_tokens_limit,
            max_images_per_request=args.max_images_per_request,
        ),
    )
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        serve(args)
    else:  # pragma: no cover - argparse enforces the choices
        raise SystemExit(f"unknown command {args.command!r}; backends: {available_backends()}")
