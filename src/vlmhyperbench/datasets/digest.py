"""What a dataset's content is, as hashes: the part of the fingerprints that data edits change.

* ``requests``: per sample, a hash of what predicting it *sends* - every manifest field except
  ``answers``, and the sha256 of each of its images. The journal keys each answer on it, so an
  edited sample (or one whose image bytes changed) is sent again and no other.
* ``sent``: one hash over all of them, for the predict fingerprint (the rule's ``params``).
* ``manifest``: the sha256 of ``manifest.jsonl`` itself, answers included, for the score
  fingerprint: changed answers alone re-score without sending anything.

A digest is computed once per manifest version per process (keyed by the manifest's path, size
and mtime), and an image is hashed once per (path, size, mtime_ns), so planning many jobs on
one dataset costs one pass over its files. An image that is missing or not a regular file
hashes to ``None`` (predicting it is a per-sample error; when it appears, the sample is sent).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vlmhyperbench.datasets.images import ImageError, open_image
from vlmhyperbench.datasets.manifest import Sample, read_manifest
from vlmhyperbench.runtime.io import stable_hash


@dataclass(frozen=True)
class DatasetDigest:
    sent: str
    manifest: str
    requests: dict[str, str]


_IMAGES: dict[tuple[str, int, int], str] = {}
_DIGESTS: dict[tuple[str, int, int], DatasetDigest] = {}


def image_sha256(path: Path) -> str | None:
    """sha256 of a regular file's bytes; ``None`` for anything else (nothing is opened then)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    key = (str(path), info.st_size, info.st_mtime_ns)
    if key not in _IMAGES:
        digest = hashlib.sha256()
        try:
            with open_image(path) as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except (ImageError, OSError):
            return None
        _IMAGES[key] = digest.hexdigest()
    return _IMAGES[key]


def request_hash(sample: Sample, dataset_dir: Path) -> str:
    """What predicting ``sample`` sends, as a hash (its answers are not sent)."""
    return stable_hash(
        {
            "sample": sample.model_dump(mode="json", exclude={"answers"}),
            "images": [image_sha256(dataset_dir / image) for image in sample.images],
        }
    )


def dataset_digest(manifest_path: str | Path) -> DatasetDigest | None:
    """The digest of the dataset whose manifest is ``manifest_path``; ``None`` while there is no
    such local file (a dataset the workflow has yet to build, or one on S3)."""
    path = Path(manifest_path)
    try:
        info = os.stat(path)
    except OSError:
        return None
    key = (str(path), info.st_size, info.st_mtime_ns)  # as given: resolving costs more
    if key not in _DIGESTS:
        dataset_dir = path.resolve().parent
        requests = {s.id: request_hash(s, dataset_dir) for s in read_manifest(path)}
        hasher = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        _DIGESTS[key] = DatasetDigest(
            sent=stable_hash(sorted(requests.items())),
            manifest=hasher.hexdigest(),
            requests=requests,
        )
    return _DIGESTS[key]


def clear_cache() -> None:
    """Forget every digest (for a long-lived process whose images change in place)."""
    _IMAGES.clear()
    _DIGESTS.clear()
