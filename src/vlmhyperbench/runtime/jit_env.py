"""Just-in-time packages (ADR-002): a model's ``packages:`` installed with ``uv`` at job start.

The packages go into an *overlay*: a folder that is put in front of the base environment on
``PYTHONPATH`` (and its ``bin/`` in front of ``PATH``), so the base image stays untouched and a
package in the overlay shadows the base's copy. Only what the base does not already satisfy is
installed: ``uv pip install --dry-run`` resolves the requirements against the base interpreter, and
the packages it would add or change are installed with ``--no-deps --target`` into the overlay.

An overlay is cached under ``$VLMHB_JIT_CACHE`` (default ``~/.cache/vlmhyperbench/jit``) by the hash
of the base interpreter (path, version, installed distributions), the requirement strings and the
index settings (``UV_INDEX_URL``, ``UV_EXTRA_INDEX_URL``, ``UV_FIND_LINKS``, ``UV_NO_INDEX``, and
the pip equivalents, which are translated). Jobs share it under a file lock; it is built in a
temporary folder and renamed into place only when ``uv`` succeeded, so a failed install leaves no
half-made environment and fails the job with uv's own message. Offline: point ``UV_FIND_LINKS`` at
a wheel folder with ``UV_NO_INDEX=1``, or ``UV_INDEX_URL`` at a mirror.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("vlmhyperbench.jit")

CACHE_ENV = "VLMHB_JIT_CACHE"
LAYOUT_VERSION = 1  # bump when the overlay layout changes, so old caches are not reused
COMPLETE_MARKER = ".complete.json"

# Index settings that change what gets installed: part of the cache key, passed on to uv.
INDEX_ENV = (
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_INDEX_STRATEGY",
    "UV_PRERELEASE",
)
# pip's spelling of the same settings (a base image configured for pip works unchanged).
PIP_TO_UV = {
    "PIP_INDEX_URL": "UV_INDEX_URL",
    "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS": "UV_FIND_LINKS",
    "PIP_NO_INDEX": "UV_NO_INDEX",
}


class JitInstallError(RuntimeError):
    """uv could not install the packages; the message carries uv's own output."""


@dataclass(frozen=True)
class Overlay:
    """An installed overlay: ``site`` goes on PYTHONPATH, ``bin`` on PATH."""

    path: Path
    key: str
    packages: tuple[str, ...]
    installed: tuple[str, ...]  # what uv added on top of the base (name==version)
    reused: bool

    @property
    def site(self) -> Path:
        return self.path / "site"

    @property
    def bin(self) -> Path:
        return self.site / "bin"

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment variables that put the overlay in front of the base environment."""
        base = os.environ if base is None else base
        python_path = [str(self.site)]
        if base.get("PYTHONPATH"):
            python_path.append(base["PYTHONPATH"])
        path = [str(self.bin)]
        if base.get("PATH"):
            path.append(base["PATH"])
        return {"PYTHONPATH": os.pathsep.join(python_path), "PATH": os.pathsep.join(path)}


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "vlmhyperbench" / "jit"


def find_uv() -> str:
    """The uv binary: the ``uv`` Python package's, else the one on PATH."""
    with contextlib.suppress(ImportError, FileNotFoundError):
        from uv import find_uv_bin

        return find_uv_bin()
    found = shutil.which("uv")
    if found:
        return found
    raise JitInstallError(
        "uv is not installed: `pip install uv` (or install vlmhyperbench[jit]) in the base "
        "environment, or remove the model's `packages:`"
    )


def index_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The uv index settings in force (pip's variables translated where uv's are unset)."""
    environ = os.environ if environ is None else environ
    settings = {name: environ[name] for name in INDEX_ENV if environ.get(name)}
    for pip_name, uv_name in PIP_TO_UV.items():
        if environ.get(pip_name) and uv_name not in settings:
            value = environ[pip_name]
            if uv_name == "UV_NO_INDEX":
                value = "1" if value.lower() in {"1", "true", "yes", "on"} else ""
            elif uv_name in {"UV_EXTRA_INDEX_URL", "UV_FIND_LINKS"}:
                value = " ".join(value.split())  # pip separates with whitespace, uv with spaces
            if value:
                settings[uv_name] = value
    return settings


_BASE_INFO_SCRIPT = """
import json, sys, importlib.metadata as md
dists = sorted({f"{d.metadata['Name']}=={d.version}".lower() for d in md.distributions()
                if d.metadata['Name']})
print(json.dumps({"executable": sys.executable, "version": sys.version, "dists": dists}))
"""


def base_identity(python: str) -> dict[str, object]:
    """What identifies the base environment: interpreter, version, and installed distributions."""
    result = subprocess.run(
        [python, "-c", _BASE_INFO_SCRIPT],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    if result.returncode != 0:
        raise JitInstallError(f"cannot inspect the base interpreter {python}:\n{result.stderr}")
    info = json.loads(result.stdout)
    dists = info.pop("dists")
    info["dists_sha256"] = hashlib.sha256("\n".join(dists).encode()).hexdigest()
    return info


def overlay_key(
    packages: Sequence[str], base: Mapping[str, object], index: Mapping[str, str]
) -> str:
    payload = {
        "layout": LAYOUT_VERSION,
        "base": dict(base),
        "packages": sorted(" ".join(p.split()) for p in packages),
        "index": dict(sorted(index.items())),
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return digest[:24]


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float | None = None) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (works across processes and pods sharing a volume)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"could not lock {path} in {timeout_s} s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# `uv pip install --dry-run` lists what it would change: " + name==1.0" (added) and
# " - name==0.9" (removed: the base's copy that the overlay will shadow).
_PLAN_LINE = re.compile(r"^\s*\+\s+(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<rest>.*)$")


def parse_dry_run(output: str) -> list[str]:
    """Requirement strings for the packages a ``uv pip install --dry-run`` would add."""
    wanted = []
    for line in output.splitlines():
        match = _PLAN_LINE.match(line)
        if not match:
            continue
        name, rest = match["name"], match["rest"].strip()
        source = re.search(r"\(from (?P<url>\S+)\)", rest)
        if rest.startswith("@"):  # a direct reference: a local wheel, a URL, a git checkout
            wanted.append(f"{name} {rest.split()[0]} {rest.split()[1]}")
        elif source:
            wanted.append(f"{name} @ {source['url']}")
        elif rest.startswith("=="):
            wanted.append(f"{name}{rest.split()[0]}")
        else:
            wanted.append(name)
    return wanted


def _run_uv(args: list[str], env: Mapping[str, str], what: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, env=dict(env), check=False)
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip()
        raise JitInstallError(f"uv could not {what}:\n{message}")
    return result.stdout + result.stderr


def ensure_overlay(
    packages: Sequence[str],
    *,
    base_python: str | None = None,
    cache_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    lock_timeout_s: float | None = 3600,
) -> Overlay:
    """Install ``packages`` (pip requirement strings) into a cached overlay; reuse it if present."""
    packages = tuple(p.strip() for p in packages if p.strip())
    if not packages:
        raise ValueError("no packages to install")
    base_python = base_python or sys.executable
    cache_dir = (cache_dir or default_cache_dir()).expanduser()
    environ = dict(os.environ if environ is None else environ)
    index = index_settings(environ)
    key = overlay_key(packages, base_identity(base_python), index)
    final = cache_dir / key

    with file_lock(cache_dir / f"{key}.lock", timeout_s=lock_timeout_s):
        marker = final / COMPLETE_MARKER
        if marker.is_file():
            info = json.loads(marker.read_text(encoding="utf-8"))
            log.info("reusing the package overlay %s for %s", final, ", ".join(packages))
            return Overlay(final, key, packages, tuple(info["installed"]), reused=True)
        if final.exists():  # a leftover without its marker: never trust it
            shutil.rmtree(final)
        return _build(packages, key, final, base_python, cache_dir, environ, index)


def _build(
    packages: tuple[str, ...],
    key: str,
    final: Path,
    base_python: str,
    cache_dir: Path,
    environ: dict[str, str],
    index: dict[str, str],
) -> Overlay:
    uv = find_uv()
    env = {k: v for k, v in environ.items() if not k.startswith(("UV_", "PIP_"))}
    env.update(index)
    env.pop("PYTHONPATH", None)  # resolve against the base as it is, not an outer overlay
    env.setdefault("UV_CACHE_DIR", str(cache_dir / "uv-cache"))
    started = time.monotonic()
    log.info("installing %s with uv (index: %s)", ", ".join(packages), index or "uv defaults")

    plan = _run_uv(
        [uv, "pip", "install", "--dry-run", "--python", base_python, *packages],
        env,
        f"resolve {', '.join(packages)}",
    )
    wanted = parse_dry_run(plan)

    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=cache_dir))
    try:
        site = tmp / "site"
        site.mkdir()
        if wanted:
            _run_uv(
                [
                    uv,
                    "pip",
                    "install",
                    "--no-deps",
                    "--python",
                    base_python,
                    "--target",
                    str(site),
                    *wanted,
                ],
                env,
                f"install {', '.join(wanted)}",
            )
        info = {
            "packages": list(packages),
            "installed": wanted,
            "index": index,
            "base_python": base_python,
            "seconds": round(time.monotonic() - started, 2),
        }
        (tmp / COMPLETE_MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "installed %s into %s in %.1f s", ", ".join(wanted) or "nothing", final, info["seconds"]
    )
    return Overlay(final, key, packages, tuple(wanted), reused=False)
