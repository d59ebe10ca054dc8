"""Per-sample journal of predictions, kept outside the declared output.

Snakemake deletes a failed job's declared outputs; the journal survives, so a re-run after a
crash sends only the samples that have no final answer yet. The first line holds the predict
fingerprint without the data (model, prompts, generation): a journal written for another setup
is set aside, not reused. Each record carries the hash of what its sample sent
(:func:`vlmhyperbench.datasets.digest.request_hash`): a sample edited since is not done.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from vlmhyperbench.runtime.io import atomic_write


class Journal:
    def __init__(self, path: str | Path, fingerprint: str) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            header = _parse(lines[0]) if lines else None
            if header and header.get("fingerprint") == self.fingerprint:
                for line in lines[1:]:
                    record = _parse(line)  # a torn last line (killed mid-write) is skipped
                    if record is not None and "id" in record:
                        self.records[record["id"]] = record
                return
            os.replace(self.path, self.path.with_name(self.path.name + ".stale"))
        with atomic_write(self.path) as handle:
            handle.write(json.dumps({"fingerprint": self.fingerprint}) + "\n")

    def answer(self, sample_id: str, request: str) -> dict[str, Any] | None:
        """The sample's record when it answers this very request (an answer or a final
        per-sample error); ``None`` when the sample must be sent."""
        record = self.records.get(sample_id)
        if record is None or record.get("retryable", False) or record.get("request") != request:
            return None
        return record

    def done(self, sample_id: str, request: str) -> bool:
        return self.answer(sample_id, request) is not None

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self.records[record["id"]] = record


def _parse(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
