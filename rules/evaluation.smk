# One score rule per metric, with a fixed script path (wildcard script paths break Kubernetes
# source upload); the task wildcard only matches tasks that list the metric.
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
        conda:
            "../envs/evaluation.yaml"
        container:
            IMAGES["base-cpu"]
        params:
            metric=metric_name,
            fingerprint=get_score_fingerprint(metric_name),
        script:
            "../scripts/score.py"
