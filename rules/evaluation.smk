# One score rule for every metric ({metric} is a wildcard), with a fixed script path (wildcard
# script paths break Kubernetes source upload): no metric needs an environment of its own today
# (one that did would get a rule of its own, with its own `conda:` and `container:`).
# The final outputs request only the run matrix's (model, task) pairs with their tasks' metrics;
# get_score_spec refuses any other combination.
# The job gets what it needs as params.spec (made at parse time from the loaded experiment) and
# loads no config (src/vlmhyperbench/metrics/score_job.py says why it is a script job;
# benchmarks/score_job.py measures it).
# Score jobs share the group "score": on a cluster the profile's `group-components` packs several
# into one pod (locally groups are inactive). A group's resources are the sum of its jobs' (they
# run at once), so each asks for a small, explicit share, never the profile's defaults.
SCORE_MEM_MB = 1000
SCORE_DISK_MB = 1000
SCORE_RUNTIME_MIN = 30


rule score:
    """One metric over one (model, task) prediction file: per-sample rows and aggregates."""
    input:
        predictions=PLAN.predictions("{model}", "{task}"),
        manifest=get_manifest,
    output:
        per_sample=PLAN.score("{model}", "{task}", "{metric}", "parquet"),
        aggregate=PLAN.score("{model}", "{task}", "{metric}", "json"),
    log:
        "logs/score/{model}/{task}/{metric}.log",
    wildcard_constraints:
        metric=alternation(PLAN.rule_metrics()),
    group:
        "score"
    conda:
        "../envs/evaluation.yaml"
    container:
        IMAGES["base-cpu"]
    threads: 1
    resources:
        mem_mb=SCORE_MEM_MB,
        disk_mb=SCORE_DISK_MB,
        runtime=SCORE_RUNTIME_MIN,
    params:
        spec=get_score_spec,
        fingerprint=get_score_fingerprint,
    script:
        "../scripts/score.py"


# A judge metric is scored from its judges' verdicts (results/judgements/), the same way
# otherwise: one score rule for them, with the judgements as inputs.
if PLAN.judge_metrics():

    rule score_judge:
        """One judge metric over one (model, task): its judges' verdicts as per-sample values."""
        input:
            unpack(get_judge_score_inputs),
            predictions=PLAN.predictions("{model}", "{task}"),
            manifest=get_manifest,
        output:
            per_sample=PLAN.score("{model}", "{task}", "{metric}", "parquet"),
            aggregate=PLAN.score("{model}", "{task}", "{metric}", "json"),
        log:
            "logs/score/{model}/{task}/{metric}.log",
        wildcard_constraints:
            metric=alternation(PLAN.judge_metrics()),
        # a group of their own: with only_when, a judge job between them reads a score job's
        # output, and a group may not depend on itself through a job outside it
        group:
            "score_judge"
        conda:
            "../envs/evaluation.yaml"
        container:
            IMAGES["base-cpu"]
        threads: 1
        resources:
            mem_mb=SCORE_MEM_MB,
            disk_mb=SCORE_DISK_MB,
            runtime=SCORE_RUNTIME_MIN,
        params:
            spec=get_score_spec,
            fingerprint=get_score_fingerprint,
        script:
            "../scripts/score.py"
