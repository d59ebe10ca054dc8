rule generate_dataset:
    """Render a synthetic dataset (the demo documents) from its registry entry."""
    output:
        manifest="data/{dataset}/manifest.jsonl",
        info="data/{dataset}/dataset.json",
        # declared so that it travels with the manifest through storage (no shared filesystem)
        images=directory("data/{dataset}/images"),
    log:
        "logs/data/{dataset}.log",
    wildcard_constraints:
        dataset=alternation(PLAN.generated_datasets),
    conda:
        "../envs/data.yaml"
    container:
        IMAGES["base-cpu"]
    params:
        entry=get_dataset_params,
    script:
        "../scripts/generate_dataset.py"


rule import_dataset:
    """Convert a dataset in another layout (original VLMHyperBench formats, HF datasets)."""
    input:
        source=get_import_source,
    output:
        manifest="data/{dataset}/manifest.jsonl",
        info="data/{dataset}/dataset.json",
        # declared so that it travels with the manifest through storage (no shared filesystem)
        images=directory("data/{dataset}/images"),
    log:
        "logs/data/{dataset}.log",
    wildcard_constraints:
        dataset=alternation(PLAN.imported_datasets),
    conda:
        "../envs/data.yaml"
    container:
        IMAGES["base-cpu"]
    params:
        entry=get_dataset_params,
    script:
        "../scripts/import_dataset.py"


rule build_tiny_model:
    """Build a tiny random-weight VLM (no hub here); loads like any real checkpoint."""
    output:
        model=directory("models/tiny/{model}"),
    log:
        "logs/models/{model}.log",
    wildcard_constraints:
        model=alternation(PLAN.tiny_models),
    conda:
        "../envs/inference-hf.yaml"
    container:
        IMAGES["base-cpu"]
    params:
        source=lambda wildcards: EXPERIMENT.servers[wildcards.model].source.model_dump(),
    script:
        "../scripts/build_tiny_model.py"
