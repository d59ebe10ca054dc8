# Per server: one serve rule (a Snakemake service job); per model or variant: one predict rule (a
# job per task). A serve job starts the wrapper once for every variant it serves (those that
# differ only in what is sent per request); Snakemake runs it in one group with their predict
# jobs (one pod on Kubernetes) and stops it when the last of them is done (see
# docs/execution.md). The serve job holds the model's resources, container and env; GPU jobs ask
# for `gpu` with `gpu_manufacturer` and `scale=0` (Kubernetes: limits equal requests, NVIDIA
# toleration); Kubernetes runs one image per run, so the image also goes into params.
for server_name, server_entry in EXPERIMENT.servers.items():

    rule:
        name:
            f"serve_{server_name}"
        input:
            **get_serve_inputs(server_name),
        output:
            server=service(server_status(server_name)),
        log:
            main=f"logs/serve/{server_name}.log",
            wrapper=f"logs/serve/{server_name}.wrapper.log",
        conda:
            containers.model_env_file(server_entry)
        container:
            containers.model_image(server_entry, EXPERIMENT.config.containers)
        threads: server_entry.resources.threads
        resources:
            **containers.server_resources(server_entry),
        params:
            python=PYTHON,
            spec=get_serve_spec(server_name),
        # A shell job: Snakemake stops a service job through the process of its shell command.
        # The status file exists at once (predict jobs wait for it); the server fills it in.
        shell:
            "touch {output.server:q}; exec {params.python} -m vlmhyperbench.inference.serve_job"
            " --spec {params.spec:q} --status {output.server:q} --log {log.main:q}"
            " --wrapper-log {log.wrapper:q}"


# Per server (or model behind its own endpoint): one predict rule, a job per (model or variant,
# task) it serves. Predict jobs only send requests: no threads and little memory, since a
# group's resources are the sum of its jobs'.
for group_name, group_models in PLAN.predict_groups().items():
    group_entry = EXPERIMENT.models[group_models[0]]

    rule:
        name:
            f"predict_{group_name}"
        input:
            unpack(get_predict_inputs(group_name)),
        output:
            predictions=PLAN.predictions("{model}", "{task}"),
        log:
            "logs/predict/{model}/{task}.log",
        wildcard_constraints:
            model=alternation(group_models),
            # the tasks the run matrix pairs with these models
            task=alternation(PLAN.tasks_of_group(group_models)),
        conda:
            containers.model_env_file(group_entry)
        container:
            containers.model_image(group_entry, EXPERIMENT.config.containers)
        threads: 0
        resources:
            **containers.client_resources(group_entry),
        params:
            model=lambda wildcards: wildcards.model,
            image=containers.model_image(group_entry, EXPERIMENT.config.containers),
            fingerprint=get_predict_fingerprint,
            journal=PLAN.journal("{model}", "{task}"),
        script:
            "../scripts/predict.py"


# Per server with load-tested pairs (`perf:`): one perf rule, a job per (model or variant, task).
# Its jobs join the serve job's group (they consume its status file): the load is measured on the
# model's own server, which each perf job holds alone while it measures (predict jobs wait, or it
# waits for them: see docs/perf.md).
for server_name in PLAN.perf_servers():
    server_entry = EXPERIMENT.servers[server_name]
    perf_pairs = PLAN.perf_pairs_of(server_name)

    rule:
        name:
            f"perf_{server_name}"
        input:
            unpack(get_perf_inputs(server_name)),
        output:
            result=PLAN.perf_json("{model}", "{task}"),
            records=PLAN.perf_records("{model}", "{task}"),
        log:
            "logs/perf/{model}/{task}.log",
        wildcard_constraints:
            model=alternation(list(dict.fromkeys(model for model, _ in perf_pairs))),
            task=alternation(list(dict.fromkeys(task for _, task in perf_pairs))),
        conda:
            containers.model_env_file(server_entry)
        container:
            containers.model_image(server_entry, EXPERIMENT.config.containers)
        threads: 0
        # perf_load: the default profile allows 1, so a local run measures one server at a
        # time (its CPUs are shared); a cluster profile leaves it unlimited (a node each).
        resources:
            **containers.client_resources(server_entry),
            perf_load=1,
        params:
            fingerprint=get_perf_fingerprint,
        script:
            "../scripts/perf.py"
