"""Small file helpers shared by every stage: atomic writes and stable hashing."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: Every temporary file of :func:`atomic_write` ends with this, so a stray one is recognisable.
TEMP_SUFFIX = ".vlmhb-tmp"


def temp_files_of(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files :func:`atomic_write` made beside ``path``
    (``.<name>.<pid>.<random>.vlmhb-tmp``), of any process."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"
    return sorted(path.parent.glob(pattern))


def remove_stale_temp_files(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files beside ``path`` left by writers that are gone (a SIGKILL,
    an OOM kill, a lost node). A file whose writer still runs on this machine is kept."""
    removed = []
    for temp in temp_files_of(path):
        if _writer_alive(temp):
            continue
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
            removed.append(temp)
    return removed


def _writer_alive(temp: Path) -> bool:
    name = Path(temp).name.removesuffix(TEMP_SUFFIX)
    pid_text = name.rsplit(".", 2)[-2] if name.count(".") >= 2 else ""
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # another write of this process (a thread) may still use it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and move it into place only if the block succeeds.

    A crash or exception leaves the previous file (or no file) — never a half-written one. The
    temporary file is ``.<name>.<pid>.<random>.vlmhb-tmp``; one left by a killed writer (no
    cleanup runs after SIGKILL) is deleted by the next write of the same file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent
    )
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike[str], payload: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(payload, handle, ensure_ascii=False, indent=2, sort_keys=True)
        handle.write("\n")


def stable_hash(payload: Any, length: int = 16) -> str:
    """Hash of a JSON-serialisable value that does not depend on key order."""
    text = json.dumps(
        payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
