"""The ``predict`` stage for one (model, task): reach the model's server, send, write output."""

from __future__ import annotations

import logging
from pathlib import Path

from vlmhyperbench.config import Experiment
from vlmhyperbench.datasets.digest import dataset_digest
from vlmhyperbench.datasets.manifest import Sample, read_manifest
from vlmhyperbench.inference.journal import Journal
from vlmhyperbench.inference.prompts import TaskPrompts
from vlmhyperbench.inference.runner import PredictRun, RunStats, predict, write_predictions
from vlmhyperbench.inference.server import server_lock, wait_for_server
from vlmhyperbench.pipeline.backend_specs import per_request_body
from vlmhyperbench.pipeline.fingerprints import predict_fingerprint
from vlmhyperbench.pipeline.selection import select_samples

log = logging.getLogger("vlmhyperbench.predict")


class DatasetImagesMissing(RuntimeError):
    """Not one of the images a dataset's samples name exists: a wrong path, not bad samples."""


def check_images_exist(dataset: str, dataset_dir: Path, samples: list[Sample]) -> None:
    """Stop before inference when every image the samples name is missing (a few missing ones
    are per-sample errors)."""
    images = list(dict.fromkeys(image for sample in samples for image in sample.images))
    if not images or any((dataset_dir / image).exists() for image in images):
        return
    first = ", ".join(images[:5])
    raise DatasetImagesMissing(
        f"dataset {dataset!r}: none of the {len(images)} images its samples name exists under "
        f"{dataset_dir} (first missing: {first}); check the dataset's path in its registry "
        f"entry, or rebuild the dataset"
    )


def run_predict_job(
    experiment: Experiment,
    model_name: str,
    task_name: str,
    manifest_path: Path,
    output_path: Path,
    journal_path: Path,
    fingerprint: str,
    server_path: Path | None = None,
) -> RunStats:
    """Send the task's pending samples to the model's endpoint, or to its shared server:
    ``server_path`` is its serve job's status file (:mod:`vlmhyperbench.inference.server`),
    which says where the server is once it is ready.

    ``fingerprint`` is the rule's (it covers the data's content); the journal is kept under
    the fingerprint of the rest (model, prompts, generation), and each of its records under
    what its sample sends - so an edited sample is sent again, and only it.
    """
    model = experiment.registry.models[model_name]
    task = experiment.registry.tasks[task_name]
    dataset_dir = manifest_path.parent.resolve()
    all_samples = read_manifest(manifest_path)
    prompts = TaskPrompts.load(task, experiment.registry.path_of("tasks", task_name))
    if prompts.collection is not None:
        known = {sample.doc_class for sample in all_samples if sample.doc_class}
        prompts.collection.check_doc_classes(known, task.dataset)
    samples = select_samples(task, all_samples)
    check_images_exist(task.dataset, dataset_dir, samples)
    digest = dataset_digest(manifest_path)
    assert digest is not None, manifest_path  # read above
    setup = predict_fingerprint(
        model, task, experiment.registry.datasets[task.dataset], prompts.fingerprint()
    )
    log.info("predict fingerprint %s (journal: %s)", fingerprint, setup)
    run = PredictRun(
        model=model,
        task=task,
        prompts=prompts,
        samples=samples,
        dataset_dir=dataset_dir,
        journal=Journal(journal_path, setup),
        output_path=output_path,
        settings=experiment.config.inference,
        served_model=model.name,
        variant=model_name if model_name != model.name else "",
        requests=digest.requests,
        extra_body=per_request_body(model),  # e.g. a vLLM variant's processor arguments
    )
    if not run.pending():  # e.g. only answers changed: no server needed
        log.info("%s/%s: every sample is answered in the journal", model_name, task_name)
        write_predictions(run)
        return RunStats(total=len(samples), already_done=len(samples), sent=0, errors=0)
    if model.endpoint is not None:
        run.api_key = model.endpoint.api_key() or run.api_key
        run.served_model = model.endpoint.model or model.name
        log.info("using the endpoint %s for %s", model.endpoint.described(), model.name)
        return predict(run, model.endpoint.url())

    if server_path is None:
        raise ValueError(f"{model_name} has no endpoint and no server status file")
    status = wait_for_server(server_path, model_name)
    # A server shared by variants serves under the name of the entry it started with.
    run.served_model = status.get("model") or model.name
    log.info("using the shared server of %s at %s", model_name, status["base_url"])
    with server_lock(server_path, exclusive=False, who=run.label):
        return predict(run, status["base_url"])
