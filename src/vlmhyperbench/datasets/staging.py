"""Build a dataset folder beside its target and swap it into place only when it is complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staging_dir(out_dir: Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``out_dir``, swapped into its place if the block succeeds."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private to the owner
        swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def swap_into_place(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``; an existing ``out_dir`` is moved aside, then deleted.

    Directories cannot be swapped in one atomic call, so the old one is parked first and put
    back if the second rename fails.
    """
    if not (out_dir.exists() or out_dir.is_symlink()):
        os.replace(staging, out_dir)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
    parked = trash / out_dir.name
    os.replace(out_dir, parked)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        os.replace(parked, out_dir)
        shutil.rmtree(trash, ignore_errors=True)
        raise
    if parked.is_dir() and not parked.is_symlink():
        shutil.rmtree(trash)
    else:
        parked.unlink()
        trash.rmdir()
