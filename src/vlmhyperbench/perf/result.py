"""What a ``perf`` job writes: ``results/perf/{model}/{task}.json`` (a :class:`PerfResult`) and,
beside it, ``{task}.parquet``: one row per request sent (:data:`RECORD_COLUMNS`).

The JSON is the contract between the load stage and the report: the report reads these files
and ``results/variants.json`` (for ``cost``) and nothing else of the load stage.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from vlmhyperbench.config.schema import PerfSettings
from vlmhyperbench.perf.search import Reason
from vlmhyperbench.perf.stats import LevelStats

LadderKind = Literal["concurrency", "rate"]

#: The per-request parquet's columns: the ladder and level it ran in, its phase, the sample it
#: sent, its times relative to the level's first request (s), its figures (ms) and its error.
RECORD_COLUMNS = (
    "ladder", "level", "index", "phase", "sample_id", "start_s", "end_s", "ttft_ms",
    "tpot_ms", "e2e_ms", "output_tokens", "error",
)  # fmt: skip


class Hardware(BaseModel):
    """Where the server ran: a figure from another machine is another result."""

    cpu: str  # /proc/cpuinfo's model name
    cpu_count: int  # the cores this process may use
    memory_gib: float
    gpus: list[str]  # the GPUs the server was given, by name ([] on CPU)
    label: str  # e.g. "1× NVIDIA H100 80GB HBM3" or "AMD EPYC 7B13, 2 cores (no GPU)"


class LevelResult(LevelStats):
    """One measured level, and whether it met the SLO."""

    meets_slo: bool


class LadderResult(BaseModel):
    kind: LadderKind  # closed loop (concurrency) or open loop (Poisson rate, requests/s)
    #: the highest level that met the SLO (``None``: not even the first)
    best: float | None
    reason: Reason
    #: the level with the highest requests/s among those that met the SLO
    best_throughput: float | None
    levels: list[LevelResult]  # in the order measured (ladder, then bisection)


class PerfResult(BaseModel):
    model: str  # the run's name for it (a sweep's variant name)
    task: str
    served_model: str  # the name its server serves it under
    backend: str
    samples: int  # the task's samples the requests cycle through
    hardware: Hardware
    settings: PerfSettings
    ladders: list[LadderResult]
    fingerprint: str
    started_at: str  # ISO 8601, UTC
    finished_at: str

    def best_throughput(self) -> float | None:
        """Requests/s at the highest SLO-meeting load over every ladder (``None``: none met)."""
        rates = [ladder.best_throughput for ladder in self.ladders]
        met = [rate for rate in rates if rate is not None]
        return max(met) if met else None
