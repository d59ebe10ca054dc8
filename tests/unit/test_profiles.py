"""Snakemake profiles: the repository's k8s profile and ``vlmhb profile install``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from vlmhyperbench.cli import app
from vlmhyperbench.cli.profile import K8sProfile
from vlmhyperbench.pipeline.snakemake_compat import user_profile_dir

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_repository_profile_is_the_rendered_template() -> None:
    """profiles/k8s/profile.yaml is what `install` writes with the placeholder values."""
    assert (REPO / "profiles" / "k8s" / "profile.yaml").read_text() == K8sProfile().render()
    assert (REPO / "profiles" / "default" / "config.yaml").is_file()


def test_k8s_profile_contents() -> None:
    profile = yaml.safe_load(K8sProfile().render())
    assert profile["executor"] == "kubernetes"
    assert profile["default-storage-provider"] == "s3"
    assert profile["shared-fs-usage"] == "none"
    assert profile["kubernetes-service-account-name"]
    assert profile["envvars"] == ["HF_TOKEN"]
    assert set(profile["default-resources"]) == {"mem_mb", "disk_mb", "runtime"}
    # score jobs packed ten to a pod (rules/evaluation.smk puts them in the group "score")
    assert profile["group-components"] == {"score": 10}
    # never credentials in the file
    assert not any("key" in k or "secret" in k or "token" in k for k in profile)


def test_user_profile_dir_is_where_snakemake_searches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from snakemake.cli import get_profile_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    folder = user_profile_dir("k8s")
    assert folder == tmp_path / "config" / "snakemake" / "k8s"
    folder.mkdir(parents=True)
    (folder / "profile.yaml").write_text("cores: 1\n")
    found = get_profile_dir("k8s")
    assert found is not None and found[1] == folder / "profile.yaml"


def test_install_fills_in_the_profile(tmp_path: Path) -> None:
    dest = tmp_path / "k8s"
    args = ["profile", "install", "k8s", "--bucket", "my-bucket", "--namespace", "team-a"]
    args += ["--image", "reg.example/vlmhb/runner:1.0.0", "--dest", str(dest)]
    args += ["--env", "HF_TOKEN", "--env", "UV_INDEX_URL", "--prefix", "/runs/x/"]
    args += ["--score-jobs-per-pod", "25"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    profile = yaml.safe_load((dest / "profile.yaml").read_text())
    assert profile["default-storage-prefix"] == "s3://my-bucket/runs/x"
    assert profile["kubernetes-namespace"] == "team-a"
    assert profile["container-image"] == "reg.example/vlmhb/runner:1.0.0"
    assert profile["envvars"] == ["HF_TOKEN", "UV_INDEX_URL"]
    assert "storage-s3-endpoint-url" not in profile
    assert profile["group-components"] == {"score": 25}

    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "exists" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--bucket", "My_Bucket", "not a valid S3 bucket name"),
        ("--namespace", "Team A", "not a valid Kubernetes namespace"),
        ("--image", "reg.example/runner", "with a tag"),
        ("--env", "SNAKEMAKE_STORAGE_S3_SECRET_KEY", "passed by the storage plugin"),
        ("--score-jobs-per-pod", "0", "at least 1"),
    ],
)
def test_install_refuses_bad_values(tmp_path: Path, option: str, value: str, message: str) -> None:
    values = {"--bucket": "b-1", "--namespace": "ns", "--image": "r/runner:1"}
    values[option] = value
    args = ["profile", "install", "k8s", "--dest", str(tmp_path / "p")]
    for key, val in values.items():
        args += [key, val]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "p").exists()
