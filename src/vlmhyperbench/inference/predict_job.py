"""The ``predict`` stage for one (model, task): start or reach the server, send, write output."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vlmhyperbench.config import Experiment
from vlmhyperbench.datasets.manifest import read_manifest
from vlmhyperbench.inference.journal import Journal
from vlmhyperbench.inference.launcher import running_wrapper, wrapper_command
from vlmhyperbench.inference.model_source import model_location
from vlmhyperbench.inference.runner import PredictRun, RunStats, predict
from vlmhyperbench.jit_env import ensure_overlay
from vlmhyperbench.prompts import TaskPrompts
from vlmhyperbench.selection import select_samples

log = logging.getLogger("vlmhyperbench.predict")


def run_predict_job(
    experiment: Experiment,
    model_name: str,
    task_name: str,
    manifest_path: Path,
    output_path: Path,
    journal_path: Path,
    wrapper_log_path: Path,
    fingerprint: str,
    model_path: Path | None = None,
) -> RunStats:
    """``model_path`` is the job's model input where it has one (a built tiny model, the local
    copy of an ``s3://`` model): under a storage provider it is not where the registry says."""
    model = experiment.registry.models[model_name]
    task = experiment.registry.tasks[task_name]
    dataset_dir = manifest_path.parent.resolve()
    all_samples = read_manifest(manifest_path)
    prompts = TaskPrompts.load(task, experiment.registry.path_of("tasks", task_name))
    if prompts.collection is not None:
        known = {sample.doc_class for sample in all_samples if sample.doc_class}
        prompts.collection.check_doc_classes(known, task.dataset)
    run = PredictRun(
        model=model,
        task=task,
        prompts=prompts,
        samples=select_samples(task, all_samples),
        dataset_dir=dataset_dir,
        journal=Journal(journal_path, fingerprint),
        output_path=output_path,
        settings=experiment.config.inference,
        served_model=model.name,
    )
    if model.endpoint is not None:
        if model.endpoint.api_key_env:
            run.api_key = os.environ.get(model.endpoint.api_key_env) or run.api_key
        run.served_model = model.endpoint.model or model.name
        log.info("using the endpoint %s for %s", model.endpoint.base_url, model.name)
        return predict(run, str(model.endpoint.base_url).rstrip("/"))

    location = str(Path(model_path).resolve()) if model_path else model_location(model)

    def command(port: int) -> list[str]:
        return wrapper_command(model, location, port, media_roots=[dataset_dir])

    env = None
    if model.packages:  # ADR-002: the model's extra packages, in an overlay over this env
        overlay = ensure_overlay(model.packages)
        log.info(
            "%s package overlay %s (%s)",
            "reusing" if overlay.reused else "installed",
            overlay.path,
            ", ".join(overlay.installed) or "all satisfied by the base environment",
        )
        env = overlay.environ()

    log.info("starting the wrapper for %s (%s backend, %s)", model.name, model.backend, location)
    with running_wrapper(
        command,
        wrapper_log_path,
        startup_timeout_s=experiment.config.inference.startup_timeout_s,
        env=env,
    ) as base_url:
        log.info("wrapper ready at %s", base_url)
        return predict(run, base_url)
