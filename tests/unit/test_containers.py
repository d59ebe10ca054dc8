"""Stage images and envs (ADR-001): Dockerfiles parsed and checked (no container engine here),
the image/env/resources each rule gets, and the conda env files."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import pytest
import yaml

from vlmhyperbench.config.schema import ContainerSettings, ModelEntry
from vlmhyperbench.pipeline import containers

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = REPO / "containers"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: continuations joined, comments dropped."""
    logical, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, f"{path}: dangling line continuation"
    out = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def resolve_args(image: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), image)


def is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag or tag in {"", "latest"}:
        return False
    return re.search(r"\d+\.\d+\.\d+", tag) is not None  # x.y.z, not a moving x.y


def dockerfiles() -> list[Path]:
    return sorted(CONTAINERS.glob("*/Dockerfile"))


def test_one_dockerfile_per_stage_image() -> None:
    assert {p.parent.name for p in dockerfiles()} == set(containers.IMAGES)


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.parent.name)
def test_dockerfile_bases_are_pinned(path: Path) -> None:
    args: dict[str, str] = {}
    froms = []
    for keyword, rest in instructions(path):
        if keyword == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key.strip()] = value.strip().strip('"')
        if keyword == "FROM":
            froms.append(resolve_args(rest.split()[0], args))
    assert froms, f"{path}: no FROM"
    for image in froms:
        assert is_pinned(image), f"{path}: base image {image!r} is not pinned to a version"


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.parent.name)
def test_dockerfile_runs_as_a_non_root_user(path: Path) -> None:
    steps = instructions(path)
    users = [rest for keyword, rest in steps if keyword == "USER"]
    assert users, f"{path}: no USER: the image would run as root"
    final = users[-1].split(":")[0]
    assert final not in {"root", "0"}, f"{path}: the last USER is root"
    # and that user exists in the image (created here, or in the base stage it builds on)
    created = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    if path.parent.name != "runner":
        assert re.search(rf"useradd .*--uid {final}\b", created), f"{path}: uid {final} not created"


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.parent.name)
def test_dockerfile_packages_are_pinned(path: Path) -> None:
    """Every package a ``pip install`` names is pinned (==), local (., ./wrapper) or constrained
    by the repository's constraints file."""
    for keyword, rest in instructions(path):
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", rest):
            words = shlex.split(command)
            if words[:2] not in (["pip", "install"], ["pip", "wheel"]):
                continue
            constrained = "-c" in words
            skip_next = False
            for word in words[2:]:
                if skip_next:
                    skip_next = False
                    continue
                if word in {"-c", "--extra-index-url", "--index-url", "--wheel-dir", "--target"}:
                    skip_next = True
                    continue
                if word.startswith("-"):
                    continue
                local = word.startswith(".")
                assert local or "==" in word or constrained, f"{path}: unpinned {word!r}"


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.parent.name)
def test_dockerfile_copies_only_what_the_build_context_sends(path: Path) -> None:
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    allowed = [p[1:] for p in ignore if p.startswith("!")]
    for keyword, rest in instructions(path):
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _dest = rest.split()
        for source in sources:
            assert (REPO / source).exists(), f"{path}: COPY {source}: not in the repository"
            assert any(
                fnmatch.fnmatch(source, pattern) or pattern.startswith(f"{source}/")
                for pattern in allowed
            ), f"{path}: COPY {source} is excluded by .dockerignore"


def test_containers_readme_documents_every_build() -> None:
    readme = (CONTAINERS / "README.md").read_text(encoding="utf-8")
    for name in containers.IMAGES:
        assert f"containers/{name}/Dockerfile" in readme


def test_every_rule_has_a_container_and_a_conda_env() -> None:
    for path in sorted((REPO / "rules").glob("*.smk")):
        text = path.read_text(encoding="utf-8")
        blocks = re.split(r"^\s*rule\b", text, flags=re.M)[1:]
        for block in blocks:
            assert "container:" in block and "conda:" in block, f"{path}: rule without both"


@pytest.mark.parametrize("env_file", sorted(set(containers.ENV_FILES.values())))
def test_conda_env_files_exist_and_are_pinned(env_file: str) -> None:
    path = (REPO / "rules" / env_file).resolve()
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    for requirement in pip:
        if requirement.startswith("-"):
            continue
        assert "==" in requirement, f"{path}: unpinned {requirement!r}"
    post_deploy = path.with_name(path.name.replace(".yaml", ".post-deploy.sh"))
    assert post_deploy.is_file(), f"{post_deploy} installs the project into the env"


def test_vllm_and_sglang_have_separate_envs() -> None:
    assert containers.ENV_FILES["vllm"] != containers.ENV_FILES["sglang"]
    assert containers.ENV_FILES["vllm"] != containers.ENV_FILES["hf"]


def model(**changes) -> ModelEntry:
    base = {"name": "m", "source": {"type": "hub", "id": "org/m"}}
    return ModelEntry.model_validate({**base, **changes})


def test_gpu_models_ask_for_gpus_the_way_kubernetes_needs() -> None:
    gpu = model(backend="vllm", resources={"gpu": 2, "mem_mb": 48000})
    assert containers.server_resources(gpu) == {
        "mem_mb": 48000,
        "runtime": 120,
        "gpu": 2,
        "gpu_manufacturer": "nvidia",
        "scale": 0,
    }
    # A CPU model names no GPU at all (gpu=0 would still add the NVIDIA toleration).
    cpu = containers.server_resources(model(resources={"gpu": 0}))
    assert not {"gpu", "gpu_manufacturer", "scale"} & set(cpu)


def test_model_images_follow_the_backend_unless_the_entry_names_one() -> None:
    settings = ContainerSettings(registry="docker://reg.example/vlmhb", tag="1.2.3")
    assert containers.model_image(model(backend="vllm"), settings) == (
        "docker://reg.example/vlmhb/vllm:1.2.3"
    )
    assert containers.model_image(model(backend="sglang"), settings).endswith("/sglang:1.2.3")
    assert containers.model_image(model(resources={"gpu": 1}), settings).endswith("/base-gpu:1.2.3")
    assert containers.model_image(model(), settings).endswith("/base-cpu:1.2.3")
    own = model(container="reg.example/custom:7")
    assert containers.model_image(own, settings) == "docker://reg.example/custom:7"
