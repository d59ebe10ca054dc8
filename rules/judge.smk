# Per judge model of the run's judge metrics: one judge rule, a job per (metric, model, task) it
# judges, writing its verdicts (docs/judges.md). A judge with a serve job runs in that job's
# group (its jobs consume the status file); one behind an endpoint is called there. A judge job
# only sends requests: no threads, little memory.
for judge_name, judged in PLAN.judge_groups().items():
    judge_entry = EXPERIMENT.registry.models[judge_name]

    rule:
        name:
            f"judge_{judge_name}"
        input:
            unpack(get_judge_inputs(judge_name)),
        output:
            judgements=PLAN.judgement("{metric}", judge_name, "{model}", "{task}"),
        log:
            f"logs/judge/{{metric}}/{judge_name}/{{model}}/{{task}}.log",
        wildcard_constraints:
            metric=alternation(list(dict.fromkeys(j[0] for j in judged))),
            model=alternation(list(dict.fromkeys(j[2] for j in judged))),
            task=alternation(list(dict.fromkeys(j[3] for j in judged))),
        conda:
            containers.model_env_file(judge_entry)
        container:
            containers.model_image(judge_entry, EXPERIMENT.config.containers)
        threads: 0
        resources:
            **containers.client_resources(judge_entry),
        params:
            judge=judge_name,
            fingerprint=get_judge_fingerprint(judge_name),
            journal=get_judge_journal(judge_name),
        script:
            "../scripts/judge.py"
