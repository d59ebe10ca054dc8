# One score rule per metric, with a fixed script path (wildcard script paths break Kubernetes
# source upload); the task wildcard only matches tasks that list the metric.
# Score jobs share the group "score": on a cluster the profile's `group-components` packs several
# into one pod (locally groups are inactive). A group's resources are the sum of its jobs' (they
# run at once), so each asks for a small, explicit share, never the profile's defaults.
SCORE_MEM_MB = 1000
SCORE_DISK_MB = 1000
SCORE_RUNTIME_MIN = 30


for metric_name in EXPERIMENT.metrics:

    rule:
        name:
            f"score_{metric_name}"
        input:
            predictions=PLAN.predictions("{model}", "{task}"),
            manifest=get_manifest,
        output:
            per_sample=PLAN.score("{model}", "{task}", metric_name, "parquet"),
            aggregate=PLAN.score("{model}", "{task}", metric_name, "json"),
        log:
            f"logs/score/{{model}}/{{task}}/{metric_name}.log",
        wildcard_constraints:
            task=alternation(EXPERIMENT.tasks_with_metric(metric_name)),
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
            metric=metric_name,
            fingerprint=get_score_fingerprint(metric_name),
        script:
            "../scripts/score.py"
