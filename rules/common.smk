from snakemake.exceptions import WorkflowError

from vlmhyperbench.config import ConfigError, load_experiment
from vlmhyperbench.plan import Plan, alternation


def _load_plan():
    """Validate the config and every registry entry before any job is planned."""
    config_path = (workflow.configfiles or ["config/config.yaml"])[-1]
    try:
        return Plan(load_experiment(config, config_path=config_path))
    except ConfigError as error:
        raise WorkflowError(f"invalid configuration:\n{error}") from None


PLAN = _load_plan()
EXPERIMENT = PLAN.experiment


wildcard_constraints:
    model=alternation(list(EXPERIMENT.models)),
    task=alternation(list(EXPERIMENT.tasks)),


# ----------------------------------------------------------------------------- input functions
def get_final_outputs():
    return PLAN.final_outputs()


def get_manifest(wildcards):
    return PLAN.manifest(wildcards.task)


def get_predict_inputs(model):
    def inputs(wildcards):
        return {"manifest": PLAN.manifest(wildcards.task), **PLAN.model_inputs(model)}

    return inputs


def get_predict_fingerprint(model):
    return lambda wildcards: PLAN.predict_fingerprint(model, wildcards.task)


def get_journal(model):
    return lambda wildcards: PLAN.journal(model, wildcards.task)


def get_score_fingerprint(metric):
    return lambda wildcards: PLAN.score_fingerprint(metric, wildcards.task)


def get_predictions(wildcards):
    return PLAN.predictions(wildcards.model, wildcards.task)


def get_import_source(wildcards):
    return PLAN.import_source(wildcards.dataset)


def get_dataset_params(wildcards):
    entry = EXPERIMENT.registry.datasets[wildcards.dataset]
    return entry.model_dump(mode="json")
