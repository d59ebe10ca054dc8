import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from vlmhyperbench.pipeline import containers, snakemake_compat
from vlmhyperbench.pipeline.backend_specs import preflight_problems
from vlmhyperbench.config import ConfigError, load_experiment
from vlmhyperbench.config.sources import ConfigSources
from vlmhyperbench.inference.serve_job import serve_spec
from vlmhyperbench.pipeline.plan import Plan, alternation
from vlmhyperbench.runtime.s3 import (
    S3AccessError,
    check_buckets,
    is_s3,
    workflow_s3_settings,
)

# Stops at once outside the Snakemake versions whose internals the workflow relies on.
snakemake_compat.require_supported(snakemake_compat.SNAKEMAKE)
# A serve job's group whose other job fails to start would otherwise leave it running forever.
snakemake_compat.stop_services_when_a_group_fails_to_start()


def _config_sources():
    """The config's files in merge order (the Snakefile's configfile, then --configfile), then
    --config: each problem names the file its key came from."""
    given = [Path(f).absolute() for f in workflow.config_settings.configfiles]
    default = [
        f
        for f in workflow.configfiles
        if Path(f).absolute() not in given
        and not workflow.config_settings.replace_workflow_config
    ]
    return ConfigSources.from_files([*default, *given], workflow.config_settings.config)


def _plain_deployment():
    """Whether jobs run in this environment (no --sdm conda / apptainer)."""
    from snakemake_interface_executor_plugins.settings import DeploymentMethod

    methods = workflow.deployment_settings.deployment_method
    return not {DeploymentMethod.CONDA, DeploymentMethod.APPTAINER} & set(methods)


def _load_plan():
    """Validate the config and every registry entry (the pydantic models that
    workflow/schemas/config.schema.yaml is generated from) before any job is planned; problems
    are plain lines, ``file: key.path: expected int, got 'four'``, naming the file (config
    layer) each key came from."""
    sources = _config_sources()
    try:
        return Plan(load_experiment(config, config_path=sources.main))
    except ConfigError as error:
        raise WorkflowError(
            f"invalid configuration:\n{error.located(sources)}"
        ) from None


PLAN = _load_plan()
EXPERIMENT = PLAN.experiment
# The repository root, for the conda envs' post-deploy scripts (they install this project).
os.environ.setdefault("VLMHB_SOURCE", str(Path(workflow.basedir).parent.resolve()))
# The serve jobs' interpreter: this one, or a conda env's / an image's own `python`.
PYTHON = sys.executable if _plain_deployment() else "python"
IMAGES = {
    name: containers.image(name, EXPERIMENT.config.containers)
    for name in containers.IMAGES
}


def _check_storage():
    """Smart Sync (ADR-004): before any job, check that every bucket the run reads or writes
    exists and accepts the credentials, so a typo or a bad key is one clear error. Not for
    ``snakemake -n`` or ``--lint``: planning contacts no bucket."""
    uris = PLAN.storage_uris()
    settings = workflow.storage_settings
    if settings.default_storage_provider == "s3" and settings.default_storage_prefix:
        uris.append(settings.default_storage_prefix)
    if not uris:
        return
    # directory outputs written by pods (see its docstring)
    snakemake_compat.fix_s3_directory_existence_check()
    if snakemake_compat.planning_only(workflow):
        return
    try:
        check_buckets(uris, workflow_s3_settings(workflow))
    except S3AccessError as error:
        raise WorkflowError(str(error)) from None


_check_storage()


def _check_engines():
    """A local run stops before any job when the machine lacks what a model's backend needs
    (e.g. Tesseract's language data), with what to install. Containers bring their own; a dry
    run or ``--lint`` runs no job, so it needs nothing.
    """
    from snakemake_interface_executor_plugins.settings import DeploymentMethod

    if snakemake_compat.planning_only(workflow):
        return
    if DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method:
        return
    problems = preflight_problems(list(EXPERIMENT.servers.values()))
    if problems:
        raise WorkflowError(
            "this machine cannot serve every model:\n" + "\n".join(problems)
        )


_check_engines()


wildcard_constraints:
    model=alternation(list(EXPERIMENT.models)),
    task=alternation(list(EXPERIMENT.tasks)),


# ----------------------------------------------------------------------------- input functions
def get_final_outputs():
    return PLAN.final_outputs()


def stored(path):
    """An ``s3://`` location as a storage input whose local copy is kept (synced once, then read
    from local disk); any other path as it is."""
    return storage(path, keep_local=True) if is_s3(path) else path


def get_manifest(wildcards):
    return stored(PLAN.manifest(wildcards.task))


def _placeholder_servers():
    """An empty file where each serve job's status will be, made at parse time if missing, and
    no record of earlier runs of it.

    A serve job must never need to run on its own account: Snakemake then leaves out of the
    run every consumer whose input from it is ``ancient()`` and present (dag.py,
    ``update_needrun``: the consumers are masked, then skipped as "no other reason to run"),
    and a service job with no consumer is never stopped. So the status file is present (not
    "missing output"), the serve job's inputs are ``ancient()`` (not "updated input"), and what
    Snakemake recorded of earlier runs of the file is removed here
    (``snakemake_compat.forget_earlier_runs``): the mark a killed run leaves on it
    (``--rerun-incomplete`` would force the serve job alone) and its metadata (a changed
    interpreter path or inference setting in the serve job's params would make it run alone).
    The status file is never worth keeping.

    With the file present and ``ancient()`` on the predict jobs' input, adding a task re-runs
    that task (and its model's server) only: otherwise Snakemake re-runs every consumer of a
    job it runs ("input files updated by another job"). Snakemake deletes the placeholder
    before the serve job starts.
    """
    for server in PLAN.servers:
        path = Path(PLAN.server(server))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        keys = snakemake_compat.persistence_keys(workflow, path)
        snakemake_compat.forget_earlier_runs(workflow, keys)


_placeholder_servers()


def server_status(server):
    """The serve job's status file as its rules name it. Where jobs share a filesystem (local
    runs) ``local()`` keeps it out of the default storage. Without one (Kubernetes) ``local()``
    would make Snakemake run the model's group in the main process
    (``snakemake_compat.local_files_stay_with_their_jobs``), so there it is a storage file: the
    jobs of the model's pod share its local copy, and the copy the pod stores afterwards plays the
    placeholder's part."""
    path = PLAN.server(server)
    if snakemake_compat.local_files_stay_with_their_jobs(workflow):
        return local(path)
    return path


def get_serve_inputs(server):
    """The model's files (a built tiny model, an ``s3://`` model's local copy). ``ancient``: a
    serve job runs only with predict jobs that need it (they have the model as an input too,
    so a changed model re-runs them) - a serve job that runs alone is never stopped."""
    return {
        name: ancient(stored(path)) for name, path in PLAN.model_inputs(server).items()
    }


def get_serve_spec(server):
    """What the serve job needs, as JSON (it is a shell job). Where the model's server may read
    images: local dataset folders, and the local copies of storage files (resolved when the job
    runs, in whichever pod)."""

    def spec(wildcards, input):
        return serve_spec(
            EXPERIMENT.servers[server],
            EXPERIMENT.config.inference,
            media_roots=[
                *PLAN.media_roots(server),
                str(workflow.storage_settings.local_storage_prefix),
            ],
            gpu_slots_dir=str(snakemake_compat.GPU_SLOTS_DIR),
            model_path=input.get("model"),
            max_new_tokens=PLAN.max_new_tokens(server),
        )

    return spec


def get_predict_inputs(group):
    """The task's data, the model's files, and its server's status file (none for a model
    reached at its endpoint). ``group``: a predict rule's server, or endpoint model."""
    server = group if group in EXPERIMENT.servers else None

    def inputs(wildcards):
        files = {"manifest": stored(PLAN.manifest(wildcards.task))}
        files.update(
            (name, stored(path)) for name, path in PLAN.model_inputs(server).items()
        )
        images = PLAN.dataset_images(wildcards.task)
        if images is not None:
            files["images"] = stored(images)
        if server is not None:
            files["server"] = ancient(server_status(server))
        return files

    return inputs


def get_predict_fingerprint(wildcards):
    return PLAN.predict_fingerprint(wildcards.model, wildcards.task)


def get_variants_document(wildcards):
    """What results/variants.json holds: a function of the config alone."""
    return json.dumps(
        EXPERIMENT.variants_document(), ensure_ascii=False, sort_keys=True
    )


def get_score_spec(wildcards):
    """What the score job needs, as JSON: it reads no config."""
    return PLAN.score_spec(wildcards.metric, wildcards.task, wildcards.model)


def get_score_fingerprint(wildcards):
    return PLAN.score_fingerprint(wildcards.metric, wildcards.task, wildcards.model)


def get_import_source(wildcards):
    return PLAN.import_source(wildcards.dataset)


def get_dataset_params(wildcards):
    entry = EXPERIMENT.registry.datasets[wildcards.dataset]
    return entry.model_dump(mode="json")


def get_perf_inputs(server):
    """A predict job's inputs, less the model's files: the task's data and the server's status
    file. Not the predictions: the jobs of a serve job's group start together, and a perf job
    waits for the server's lock instead (``inference.server.server_lock``)."""

    def inputs(wildcards):
        files = {
            "manifest": stored(PLAN.manifest(wildcards.task)),
            "server": ancient(server_status(server)),
        }
        images = PLAN.dataset_images(wildcards.task)
        if images is not None:
            files["images"] = stored(images)
        return files

    return inputs


def get_perf_fingerprint(wildcards):
    return PLAN.perf_fingerprint(wildcards.model, wildcards.task)


def get_judge_inputs(judge):
    """The judged model's predictions, the task's data, the judge's server status file
    (none for a judge behind an endpoint); pairwise, the other model's predictions."""
    server = EXPERIMENT.server_of(judge)

    def inputs(wildcards):
        files = {
            "manifest": stored(PLAN.manifest(wildcards.task)),
            "predictions": PLAN.predictions(wildcards.model, wildcards.task),
        }
        images = PLAN.dataset_images(wildcards.task)
        if images is not None:
            files["images"] = stored(images)
        if server is not None:
            files["server"] = ancient(server_status(server))
        files.update(get_rule_scores(wildcards))
        against = PLAN.against_predictions(
            wildcards.metric, wildcards.model, wildcards.task
        )
        if against is not None:
            files["against_predictions"] = against
        return files

    return inputs


def get_rule_scores(wildcards):
    """A judge metric with ``only_when``: the rule-based metric's scores of the pair."""
    scores = PLAN.only_when_scores(wildcards.metric, wildcards.model, wildcards.task)
    return {"rule_scores": scores} if scores else {}


def get_judge_fingerprint(judge):
    def fingerprint(wildcards):
        return PLAN.judge_fingerprint(wildcards.metric, judge)

    return fingerprint


def get_judge_journal(judge):
    def journal(wildcards):
        return PLAN.judge_journal(
            wildcards.metric, judge, wildcards.model, wildcards.task
        )

    return journal


def get_judge_score_inputs(wildcards):
    """A judge metric's score job: its judges' judgements (and its only_when rule's scores)."""
    judgements = PLAN.judgements_for_score(
        wildcards.metric, wildcards.model, wildcards.task
    )
    return {"judgements": judgements, **get_rule_scores(wildcards)}
