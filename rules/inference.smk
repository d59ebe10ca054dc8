# One predict rule per model: each gets its own resources, container and env. GPU jobs ask for
# `gpu` with `gpu_manufacturer` and `scale=0` (Kubernetes: limits equal requests, NVIDIA
# toleration); Kubernetes runs one image per run, so the image also goes into params.
for model_name, model_entry in EXPERIMENT.models.items():

    rule:
        name:
            f"predict_{model_name}"
        input:
            unpack(get_predict_inputs(model_name)),
        output:
            predictions=PLAN.predictions(model_name, "{task}"),
        log:
            main=f"logs/predict/{model_name}/{{task}}.log",
            wrapper=f"logs/predict/{model_name}/{{task}}.wrapper.log",
        wildcard_constraints:
            # only the tasks the run matrix pairs with this model
            task=alternation(EXPERIMENT.tasks_of(model_name)),
        conda:
            containers.model_env_file(model_entry)
        container:
            containers.model_image(model_entry, EXPERIMENT.config.containers)
        threads: model_entry.resources.threads
        resources:
            **containers.predict_resources(model_entry),
        params:
            model=model_name,
            image=containers.model_image(model_entry, EXPERIMENT.config.containers),
            fingerprint=get_predict_fingerprint(model_name),
            journal=PLAN.journal(model_name, "{task}"),
        script:
            "../scripts/predict.py"
