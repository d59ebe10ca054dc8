"""The ``serve`` stage for one model: start its wrapper once, serve every task, stop on SIGTERM.

Run by the ``serve_<model>`` rule as ``python -m vlmhyperbench.inference.serve_job``: a
``shell:`` job, not a ``script:`` one, because Snakemake stops a service job through the
process its shell command started (it does not track the process of a ``script:``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from vlmhyperbench.config.schema import InferenceSettings, ModelEntry
from vlmhyperbench.inference.gpu_slots import claim_gpus, cuda_env, visible_gpus
from vlmhyperbench.inference.launcher import die_with_parent, wrapper_command, wrapper_process
from vlmhyperbench.inference.model_source import model_location
from vlmhyperbench.inference.server import (
    FAILED,
    READY,
    STANDBY,
    STARTING,
    Terminated,
    stop_on_sigterm,
    wanted_path,
    write_status,
)
from vlmhyperbench.runtime.jit_env import ensure_overlay
from vlmhyperbench.runtime.logsetup import setup_logging

log = logging.getLogger("vlmhyperbench.serve")


def serve_spec(
    model: ModelEntry,
    settings: InferenceSettings,
    media_roots: list[str],
    gpu_slots_dir: str,
    model_path: str | None = None,
    max_new_tokens: int | None = None,
) -> str:
    """The ``--spec`` of a serve job (JSON): everything it needs, so it reads no config
    (``max_new_tokens``: the longest reply its requests may ask for)."""
    return json.dumps(
        {
            "model": model.model_dump(mode="json"),
            "inference": settings.model_dump(mode="json"),
            "media_roots": media_roots,
            "gpu_slots_dir": gpu_slots_dir,
            "model_path": model_path,
            "max_new_tokens": max_new_tokens,
        },
        sort_keys=True,
    )


def run_serve_job(
    model: ModelEntry,
    settings: InferenceSettings,
    status_path: Path,
    log_path: Path,
    wrapper_log_path: Path,
    media_roots: list[Path],
    gpu_slots_dir: Path,
    model_path: str | None = None,
    max_new_tokens: int | None = None,
) -> None:
    """Serve ``model`` until SIGTERM. ``model_path`` is the job's model input where it has one
    (a built tiny model, the local copy of an ``s3://`` model).

    The wrapper starts when the first predict job asks for it (the *wanted* file); if none does
    before SIGTERM (each had all its answers in its journal), no model is loaded.

    The server admits at most ``inference.concurrency`` requests at once, however many of the
    model's predict jobs send to it. With ``resources.gpu`` > 0 and GPUs known on this machine
    (``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi``), the server gets GPUs no other serve job on
    this machine holds (:mod:`vlmhyperbench.inference.gpu_slots`).
    """
    location = str(Path(model_path).resolve()) if model_path else model_location(model)
    roots = list(dict.fromkeys(Path(root).resolve() for root in media_roots))
    about = {"model": model.name, "model_path": location, "log": str(log_path)}
    # A request left by a killed run is stale; a predict job of this run asks again as long as
    # it finds none (see wait_for_server).
    wanted_path(status_path).unlink(missing_ok=True)
    with stop_on_sigterm():
        try:
            write_status(status_path, status=STANDBY, **about)
            log.info("%s: waiting for a predict job to ask for the server", model.name)
            while not wanted_path(status_path).exists():
                time.sleep(0.1)
        except Terminated:
            log.info("stopped (SIGTERM): no predict job needed the server; no model loaded")
            return
        try:
            write_status(status_path, status=STARTING, **about)
            _serve(model, roots, settings, status_path, about, wrapper_log_path, gpu_slots_dir,
                   max_new_tokens)  # fmt: skip
        except Terminated:
            log.info("stopped (SIGTERM): the predict jobs are done, or the run was stopped")
        except Exception as exc:
            write_status(status_path, status=FAILED, error=str(exc), **about)
            raise
        finally:
            wanted_path(status_path).unlink(missing_ok=True)


def _serve(
    model: ModelEntry,
    roots: list[Path],
    settings: InferenceSettings,
    status_path: Path,
    about: dict[str, Any],
    wrapper_log_path: Path,
    gpu_slots_dir: Path,
    max_new_tokens: int | None = None,
) -> None:
    location = about["model_path"]
    env: dict[str, str] = {}
    if model.packages:  # ADR-002: the model's extra packages, in an overlay over this env
        overlay = ensure_overlay(model.packages)
        log.info(
            "%s package overlay %s (%s)",
            "reusing" if overlay.reused else "installed",
            overlay.path,
            ", ".join(overlay.installed) or "all satisfied by the base environment",
        )
        env.update(overlay.environ())
    gpus = visible_gpus() if model.resources.gpu else None
    if model.resources.gpu and gpus is None:
        log.info("%s asks for %d GPU(s); none known here", model.name, model.resources.gpu)
    count = model.resources.gpu if gpus is not None else 0
    holder = f"{model.name} (pid {os.getpid()})"
    with claim_gpus(count, gpus or [], gpu_slots_dir, holder=holder) as ids:
        if ids:
            env.update(cuda_env(ids))
            log.info("%s gets CUDA_VISIBLE_DEVICES=%s", model.name, env["CUDA_VISIBLE_DEVICES"])

        def command(port: int) -> list[str]:
            return wrapper_command(
                model,
                location,
                port,
                media_roots=roots,
                stall_timeout_s=settings.stall_timeout_s,
                max_concurrent_requests=settings.concurrency,
                max_new_tokens=max_new_tokens,
            )

        log.info("starting the wrapper for %s (%s, %s)", model.name, model.backend, location)
        started = time.monotonic()
        with wrapper_process(
            command, wrapper_log_path, startup_timeout_s=settings.startup_timeout_s, env=env
        ) as (base_url, process):
            log.info(
                "wrapper ready at %s after %.1f s; serving until the predict jobs are done",
                base_url,
                time.monotonic() - started,
            )
            write_status(status_path, status=READY, base_url=base_url, gpus=ids, **about)
            code = process.wait()  # until SIGTERM, or the wrapper dies
            raise RuntimeError(
                f"the wrapper of {model.name} exited with code {code} while serving; "
                f"see {wrapper_log_path}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON from serve_spec()")
    parser.add_argument("--status", required=True, type=Path, help="the service output")
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--wrapper-log", required=True, type=Path)
    args = parser.parse_args(argv)
    die_with_parent()  # a killed run takes its servers with it
    setup_logging(args.log)
    try:
        spec = json.loads(args.spec)
        run_serve_job(
            ModelEntry.model_validate(spec["model"]),
            InferenceSettings.model_validate(spec["inference"]),
            status_path=args.status,
            log_path=args.log,
            wrapper_log_path=args.wrapper_log,
            media_roots=[Path(root) for root in spec["media_roots"]],
            gpu_slots_dir=Path(spec["gpu_slots_dir"]),
            model_path=spec.get("model_path"),
            max_new_tokens=spec.get("max_new_tokens"),
        )
    except Exception:
        log.exception("the server of the model failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
