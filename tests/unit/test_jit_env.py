"""Just-in-time packages: real uv installs from a local wheel folder, no index."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.wheels import make_demo_wheels
from vlmhyperbench.runtime import jit_env
from vlmhyperbench.runtime.jit_env import (
    JitInstallError,
    ensure_overlay,
    index_settings,
    overlay_key,
    parse_dry_run,
)

pytest.importorskip("uv", reason="uv is part of the test extras")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_wheels(tmp_path_factory.mktemp("wheels"))


def offline_env(wheels: Path) -> dict[str, str]:
    """No index at all: only the wheel folder (and what the base environment already has)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env.update({"UV_NO_INDEX": "1", "UV_FIND_LINKS": str(wheels), "UV_OFFLINE": "1"})
    return env


def run_with(overlay: jit_env.Overlay, code: str) -> str:
    env = {**os.environ, **overlay.environ()}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout.strip()


def test_installs_from_a_wheel_folder_and_reuses_the_env(wheels: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = offline_env(wheels)
    first = ensure_overlay(["jitdemo-app==0.3.0"], cache_dir=cache, environ=env)
    assert not first.reused
    # Only what the base lacks: the app and its dependency, not numpy (the base has it).
    assert sorted(first.installed) == ["jitdemo-app==0.3.0", "jitdemo-core==1.2.0"]
    assert not list(first.site.glob("numpy*"))
    out = run_with(
        first, "import jitdemo_app, numpy; print(jitdemo_app.__version__, jitdemo_app.CORE)"
    )
    assert out == "0.3.0 1.2.0"
    # The base environment itself is untouched.
    base = subprocess.run([sys.executable, "-c", "import jitdemo_app"], capture_output=True)
    assert base.returncode != 0

    second = ensure_overlay(["jitdemo-app==0.3.0"], cache_dir=cache, environ=env)
    assert second.reused and second.path == first.path
    assert second.installed == first.installed
    # Built in a temporary folder and renamed: nothing but the env, its lock and uv's cache.
    leftovers = {p.name for p in cache.iterdir()} - {first.key, f"{first.key}.lock", "uv-cache"}
    assert leftovers == set()


def test_reuse_does_not_call_uv(
    wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    env = offline_env(wheels)
    ensure_overlay(["jitdemo-core"], cache_dir=cache, environ=env)

    def no_uv() -> str:
        raise AssertionError("uv must not run for a cached overlay")

    monkeypatch.setattr(jit_env, "find_uv", no_uv)
    assert ensure_overlay(["jitdemo-core"], cache_dir=cache, environ=env).reused


def test_concurrent_jobs_share_one_install(wheels: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = offline_env(wheels)
    with ThreadPoolExecutor(max_workers=3) as pool:
        overlays = list(
            pool.map(
                lambda _: ensure_overlay(["jitdemo-core==1.2.0"], cache_dir=cache, environ=env),
                range(3),
            )
        )
    assert sorted(o.reused for o in overlays) == [False, True, True]
    assert len({o.path for o in overlays}) == 1


def test_unknown_package_fails_with_uvs_message_and_leaves_nothing(
    wheels: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(JitInstallError) as error:
        ensure_overlay(["jitdemo-nonexistent==9.9"], cache_dir=cache, environ=offline_env(wheels))
    message = str(error.value)
    assert "jitdemo-nonexistent" in message
    assert "uv could not resolve" in message
    envs = [p for p in cache.iterdir() if p.is_dir() and p.name != "uv-cache"]
    assert envs == []


def test_failed_install_after_resolution_leaves_no_half_env(
    wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The install step itself fails (here: a wheel that vanished after resolution)."""
    cache = tmp_path / "cache"
    real_run = jit_env._run_uv

    def flaky(args: list[str], env: dict[str, str], what: str) -> str:
        if "--dry-run" not in args:
            args = [*args, "jitdemo-missing-at-install==1.0"]
        return real_run(args, env, what)

    monkeypatch.setattr(jit_env, "_run_uv", flaky)
    with pytest.raises(JitInstallError, match="uv could not install"):
        ensure_overlay(["jitdemo-core"], cache_dir=cache, environ=offline_env(wheels))
    assert [p for p in cache.iterdir() if p.is_dir() and p.name != "uv-cache"] == []
    # and a later good attempt still works
    monkeypatch.setattr(jit_env, "_run_uv", real_run)
    assert not ensure_overlay(["jitdemo-core"], cache_dir=cache, environ=offline_env(wheels)).reused


def test_an_env_without_its_marker_is_rebuilt(wheels: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = offline_env(wheels)
    overlay = ensure_overlay(["jitdemo-core"], cache_dir=cache, environ=env)
    (overlay.path / jit_env.COMPLETE_MARKER).unlink()
    again = ensure_overlay(["jitdemo-core"], cache_dir=cache, environ=env)
    assert not again.reused
    assert run_with(again, "import jitdemo_core; print(jitdemo_core.__version__)") == "1.2.0"


def test_requirements_the_base_satisfies_install_nothing(wheels: Path, tmp_path: Path) -> None:
    overlay = ensure_overlay(
        ["pyyaml", "numpy>=1"], cache_dir=tmp_path, environ=offline_env(wheels)
    )
    assert overlay.installed == ()


def test_cache_key_covers_packages_index_and_base() -> None:
    base = {"executable": "/usr/bin/python3", "version": "3.11", "dists_sha256": "x"}
    key = overlay_key(["a==1", "b"], base, {})
    assert key == overlay_key(["b", "a==1"], base, {})  # order does not matter
    assert key != overlay_key(["a==2", "b"], base, {})
    assert key != overlay_key(["a==1", "b"], base, {"UV_INDEX_URL": "http://mirror/simple"})
    assert key != overlay_key(["a==1", "b"], {**base, "dists_sha256": "y"}, {})


def test_pip_index_settings_are_translated_for_uv() -> None:
    settings = index_settings(
        {"PIP_INDEX_URL": "http://mirror/simple", "PIP_NO_INDEX": "false", "HOME": "/root"}
    )
    assert settings == {"UV_INDEX_URL": "http://mirror/simple"}
    assert index_settings({"PIP_FIND_LINKS": "/w", "UV_FIND_LINKS": "/v"}) == {
        "UV_FIND_LINKS": "/v"
    }


def test_parse_dry_run_output() -> None:
    output = """Resolved 4 packages in 3ms
Would download 2 packages
Would install 3 packages
 + jitdemo-app==0.3.0
 - pandas==3.1.1
 + pandas==1.5.3
 + local-thing @ file:///tmp/w/local_thing-1.0-py3-none-any.whl
"""
    assert parse_dry_run(output) == [
        "jitdemo-app==0.3.0",
        "pandas==1.5.3",
        "local-thing @ file:///tmp/w/local_thing-1.0-py3-none-any.whl",
    ]
