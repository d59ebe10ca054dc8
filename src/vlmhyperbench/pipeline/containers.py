"""Which image and which conda env each stage runs in (ADR-001).

Images are built from ``containers/`` (see ``containers/README.md``): ``base-cpu`` (data, tiny and
CPU models, evaluation, report), ``base-gpu`` (Hugging Face models on GPU), ``vllm`` and ``sglang``
(their engines pin different transformers versions, so each has its own image and env), and
``runner`` (snakemake and the plugins on top of one of those, the pod image on Kubernetes).

The rules use these for their ``container:`` (``--sdm apptainer``) and ``conda:`` (``--sdm
conda``) directives; without ``--sdm`` both are ignored and everything runs in the current
environment. Kubernetes runs every pod from the one ``--container-image``, so the predict rule
also records its image in ``params:`` (a changed image re-runs the predictions).
"""

from __future__ import annotations

from vlmhyperbench.config.schema import ContainerSettings, ModelEntry

IMAGES = ("base-cpu", "base-gpu", "vllm", "sglang", "runner")

# Conda env files (relative to rules/) per stage and backend.
ENV_FILES = {
    "data": "../envs/data.yaml",
    "evaluation": "../envs/evaluation.yaml",
    "hf": "../envs/inference-hf.yaml",
    "vllm": "../envs/inference-vllm.yaml",
    "sglang": "../envs/inference-sglang.yaml",
    # The openai backend only proxies an endpoint: the HF env has everything it needs.
    "openai": "../envs/inference-hf.yaml",
    # Tesseract in-process: tesserocr is in the HF env (language data from the system).
    "tesseract": "../envs/inference-hf.yaml",
}


def image(name: str, settings: ContainerSettings | None = None) -> str:
    if name not in IMAGES:
        raise ValueError(f"unknown image {name!r}; known: {', '.join(IMAGES)}")
    settings = settings or ContainerSettings()
    return f"{settings.registry}/{name}:{settings.tag}"


def model_image_name(model: ModelEntry) -> str:
    """The image family a model's predict job needs."""
    if model.backend in {"vllm", "sglang"}:
        return model.backend
    if model.backend == "hf" and model.resources.gpu > 0:
        return "base-gpu"
    return "base-cpu"


def model_image(model: ModelEntry, settings: ContainerSettings | None = None) -> str:
    """The model entry's own ``container`` if it has one, else the stage image for its backend."""
    if model.container:
        return model.container if "://" in model.container else f"docker://{model.container}"
    return image(model_image_name(model), settings)


def model_env_file(model: ModelEntry) -> str:
    return ENV_FILES[model.backend]


def server_resources(model: ModelEntry) -> dict[str, int | str]:
    """Resources of a model's serve job (its server). GPU jobs ask for ``gpu`` with
    ``gpu_manufacturer`` (the Kubernetes plugin refuses a GPU without one and adds the NVIDIA
    toleration) and ``scale=0``, which makes the plugin set limits equal to requests (Kubernetes
    rejects a GPU request without a limit). CPU jobs name no GPU at all: even ``gpu=0`` would
    add the toleration."""
    resources: dict[str, int | str] = {
        "mem_mb": model.resources.mem_mb,
        "runtime": model.resources.runtime_min,
    }
    if model.resources.gpu > 0:
        resources.update(gpu=model.resources.gpu, gpu_manufacturer="nvidia", scale=0)
    return resources


#: A predict job only sends requests and writes a file: its share of the model's pod.
CLIENT_MEM_MB = 1000
CLIENT_DISK_MB = 1000


def client_resources(model: ModelEntry) -> dict[str, int | str]:
    """Resources of a predict job. Set explicitly and small: in its model's group (one pod) the
    resources of the jobs add up, and a profile's ``default-resources`` (e.g. 20 GB of disk)
    would count once per task."""
    return {
        "mem_mb": CLIENT_MEM_MB,
        "disk_mb": CLIENT_DISK_MB,
        "runtime": model.resources.runtime_min,
    }
