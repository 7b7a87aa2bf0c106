"""A tiny thread-safe Prometheus text exposition (counters and one latency histogram).

Labels are route templates (``/v1/users/{user_id}/score``), never concrete paths, so no
user id ever reaches the metrics.
"""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _labels(d: dict[str, str]) -> str:
    if not d:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in sorted(d.items()))
    return "{" + inner + "}"


class Metrics:
    """Counters, gauges and a request-latency histogram rendered as Prometheus text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._help: dict[str, tuple[str, str]] = {}
        self._hist: dict[tuple[tuple[str, str], ...], list[float]] = {}

    def inc(self, name: str, value: float = 1.0, help: str = "", **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._help.setdefault(name, ("counter", help))
            self._counters[name][key] = self._counters[name].get(key, 0.0) + value

    def set(self, name: str, value: float, help: str = "", **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._help.setdefault(name, ("gauge", help))
            self._gauges[name][key] = value

    def observe(self, seconds: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            h = self._hist.get(key)
            if h is None:
                h = self._hist[key] = [0.0] * (len(BUCKETS) + 2)  # buckets..., count, sum
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-2] += 1
            h[-1] += seconds

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for store in (self._counters, self._gauges):
                for name, series in sorted(store.items()):
                    typ, help_ = self._help.get(name, ("untyped", ""))
                    lines.append(f"# HELP {name} {help_ or name}")
                    lines.append(f"# TYPE {name} {typ}")
                    for key, v in sorted(series.items()):
                        lines.append(f"{name}{_labels(dict(key))} {v:g}")
            name = "buyerscore_request_duration_seconds"
            lines.append(f"# HELP {name} Request latency by route template.")
            lines.append(f"# TYPE {name} histogram")
            for key, h in sorted(self._hist.items()):
                lab = dict(key)
                for i, b in enumerate(BUCKETS):
                    lines.append(f"{name}_bucket{_labels({**lab, 'le': f'{b:g}'})} {h[i]:g}")
                lines.append(f"{name}_bucket{_labels({**lab, 'le': '+Inf'})} {h[-2]:g}")
                lines.append(f"{name}_count{_labels(lab)} {h[-2]:g}")
                lines.append(f"{name}_sum{_labels(lab)} {h[-1]:.6f}")
        return "\n".join(lines) + "\n"
