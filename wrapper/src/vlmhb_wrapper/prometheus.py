"""A small Prometheus registry rendered in the text exposition format (version 0.0.4).

Kept dependency-free on purpose (the wrapper runs inside model containers): counters, gauges
and histograms with labels, thread-safe (the hf batch worker records from its own thread).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence

__all__ = ["Counter", "Gauge", "Histogram", "Registry", "WrapperMetrics"]

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.label_names, k)} {_num(v)}" for k, v in items]


class Gauge(_Metric):
    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        collect: Callable[[], Iterable[tuple[LabelValues, float]]] | None = None,
    ) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}
        self._collect = collect

    def set(self, value: float, *labels: str) -> None:
        with self._lock:
            self._values[labels] = value

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def render(self) -> list[str]:
        if self._collect is not None:
            items = sorted(self._collect())
        else:
            with self._lock:
                items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.label_names, k)} {_num(v)}" for k, v in items]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self._data: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            counts, total = self._data.setdefault(labels, ([0] * (len(self.buckets) + 1), [0.0]))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            counts[-1] += 1
            total[0] += value

    def count(self, *labels: str) -> int:
        data = self._data.get(labels)
        return data[0][-1] if data else 0

    def render(self) -> list[str]:
        lines = []
        with self._lock:
            items = sorted((k, (list(c), t[0])) for k, (c, t) in self._data.items())
        for key, (counts, total) in items:
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                le = _labels(self.label_names, key, f'le="{_num(bound)}"')
                lines.append(f"{self.name}_bucket{le} {count}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {counts[-1]}")
        return lines


class _BackendGauges(_Metric):
    """Whatever gauges the backend reports (``Backend.metrics()``), read at scrape time."""

    kind = "gauge"

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        super().__init__("backend", "backend gauges")
        self._read = read

    def header(self) -> list[str]:
        return []

    def render(self) -> list[str]:
        lines = []
        for name, value in sorted(self._read().items()):
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# TYPE {name} {kind}", f"{name} {_num(value)}"]
        return lines


class Registry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics:
            lines += metric.header()
            lines += metric.render()
        return "\n".join(lines) + "\n"


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class WrapperMetrics:
    """The wrapper's metrics (``vlmhb_`` prefix)."""

    def __init__(self) -> None:
        self.registry = Registry()
        add = self.registry.add
        self.requests = add(
            Counter(
                "vlmhb_requests_total",
                "HTTP requests answered, by route, status code and streaming",
                ("route", "status", "stream"),
            )
        )
        self.in_flight = add(Gauge("vlmhb_requests_in_flight", "chat requests being served"))
        self.waiting = add(
            Gauge(
                "vlmhb_requests_waiting",
                "chat requests waiting for a slot of --max-concurrent-requests",
            )
        )
        self.waiting.set(0)
        #: Set only when the wrapper has a limit (no sample: unlimited).
        self.max_concurrent = add(
            Gauge("vlmhb_max_concurrent_requests", "most chat requests generated at once")
        )
        self.latency = add(
            Histogram(
                "vlmhb_request_latency_seconds", "chat latency (t0 -> last token)", _LATENCY_BUCKETS
            )
        )
        self.ttft = add(
            Histogram("vlmhb_time_to_first_token_seconds", "t0 -> first token", _LATENCY_BUCKETS)
        )
        self.queue = add(
            Histogram("vlmhb_queue_seconds", "wait before generation started", _LATENCY_BUCKETS)
        )
        self.prompt_tokens = add(Counter("vlmhb_prompt_tokens_total", "prompt tokens processed"))
        self.completion_tokens = add(
            Counter("vlmhb_completion_tokens_total", "completion tokens generated")
        )
        self.batch_size = add(
            Histogram(
                "vlmhb_batch_size", "hf: requests per generate() batch", (1, 2, 4, 8, 16, 32, 64)
            )
        )
        self.peak_memory = add(
            Gauge(
                "vlmhb_peak_memory_megabytes",
                "peak memory of the last finished request",
                ("source",),
            )
        )
        self.backend_state: Gauge | None = None

    def bind_backend(
        self,
        state: Callable[[], str],
        info: dict[str, str],
        extra: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        states = ("loading", "ready", "failed")
        self.backend_state = self.registry.add(  # type: ignore[assignment]
            Gauge(
                "vlmhb_backend_state",
                "1 for the backend's current state",
                ("state",),
                collect=lambda: [((s,), 1.0 if state() == s else 0.0) for s in states],
            )
        )
        names = tuple(sorted(info))
        self.registry.add(
            Gauge(
                "vlmhb_info",
                "wrapper version, backend and served model",
                names,
                collect=lambda: [(tuple(info[n] for n in names), 1.0)],
            )
        )
        if extra is not None:
            self.registry.add(_BackendGauges(extra))

    def render(self) -> str:
        return self.registry.render()
