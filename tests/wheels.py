"""Build small, real wheel files for the just-in-time package tests (no index, no network).

A wheel is a zip with the package files, ``*.dist-info/{METADATA,WHEEL,RECORD}``; uv installs
these like any wheel from PyPI.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def make_wheel(
    folder: Path,
    name: str,
    version: str = "0.1.0",
    *,
    requires: list[str] | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """Write ``{name}-{version}-py3-none-any.whl`` into ``folder``; ``files`` maps archive paths
    to their text (default: a module ``{name}/__init__.py`` with ``__version__``)."""
    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    files = files or {f"{module}/__init__.py": f'__version__ = "{version}"\n'}
    dist_info = f"{module}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {req}" for req in requires or []]
    contents = {
        **files,
        f"{dist_info}/METADATA": "\n".join(metadata) + "\n",
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record_lines = []
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for arcname, text in contents.items():
            data = text.encode()
            archive.writestr(arcname, data)
            record_lines.append(f"{arcname},{_record_hash(data)},{len(data)}")
        record_lines.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record_lines) + "\n")
    return path


# A module that, when it is on the path of a starting interpreter, records that interpreter's pid:
# proof that a process (the wrapper) really ran with the overlay in front of its base environment.
SITECUSTOMIZE = """\
import os

_marker = os.environ.get("VLMHB_TEST_OVERLAY_MARKER")
if _marker:
    with open(_marker, "a", encoding="utf-8") as _f:
        _f.write(f"{os.getpid()}\\n")
"""


def make_demo_wheels(folder: Path) -> Path:
    """``jitdemo-core`` (plain), ``jitdemo-app`` (needs jitdemo-core and numpy, which the base
    already has, so it must not be fetched) and ``jitdemo-probe`` (the sitecustomize above)."""
    make_wheel(folder, "jitdemo-core", "1.2.0")
    make_wheel(
        folder,
        "jitdemo-app",
        "0.3.0",
        requires=["jitdemo-core>=1.0", "numpy>=1.20"],
        files={
            "jitdemo_app/__init__.py": (
                "import jitdemo_core, numpy\n"
                "__version__ = '0.3.0'\n"
                "CORE = jitdemo_core.__version__\n"
            )
        },
    )
    make_wheel(folder, "jitdemo-probe", "0.1.0", files={"sitecustomize.py": SITECUSTOMIZE})
    return folder
