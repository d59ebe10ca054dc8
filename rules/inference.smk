# One predict rule per model: each gets its own resources (and, later, container and env).
for model_name, model_entry in EXPERIMENT.models.items():

    rule:
        name:
            f"predict_{model_name}"
        input:
            unpack(get_predict_inputs(model_name)),
        output:
            predictions=f"results/predictions/{model_name}/{{task}}.jsonl",
        log:
            main=f"logs/predict/{model_name}/{{task}}.log",
            wrapper=f"logs/predict/{model_name}/{{task}}.wrapper.log",
        conda:
            "../envs/inference-hf.yaml"
        threads: model_entry.resources.threads
        resources:
            mem_mb=model_entry.resources.mem_mb,
            runtime=model_entry.resources.runtime_min,
            gpu=model_entry.resources.gpu,
        params:
            model=model_name,
            fingerprint=get_predict_fingerprint(model_name),
            journal=get_journal(model_name),
        script:
            "../scripts/predict.py"
