"""Prometheus metrics, one name each; the API and every executor expose them on /metrics."""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("spinbot_http_requests_total", "HTTP requests", ["method", "route", "status"])
JOBS = Counter("spinbot_jobs_total", "Jobs reaching a status", ["status"])
NODE_DURATION = Histogram(
    "spinbot_node_duration_seconds",
    "Node run time by service",
    ["service", "plane", "status"],
    buckets=(0.005, 0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
HANDOFFS = Counter("spinbot_handoffs_total", "Graph hand-offs between planes", ["source", "target"])
PLANNER_ATTEMPTS = Counter("spinbot_planner_attempts_total", "Planner LLM attempts", ["outcome"])
PLANNER_FALLBACKS = Counter("spinbot_planner_fallbacks_total", "Plans that fell back to a fixed pipeline")
SSE_STREAMS = Gauge("spinbot_sse_streams_open", "Open server-sent event streams")
GPU_MEMORY = Gauge("spinbot_gpu_memory_bytes", "GPU executor device memory", ["device", "kind"])
EXECUTOR_INFLIGHT = Gauge("spinbot_executor_nodes_running", "Nodes running on this executor", ["plane"])
JOBS_CURRENT = Gauge("spinbot_jobs_current", "Jobs in Postgres by status (set by the API on scrape)", ["status"])
GC_PAUSE = Histogram(
    "spinbot_gc_pause_seconds",
    "Garbage-collector pauses (the event loop waits them out) by generation",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5),
)

GC_PAUSE_LONGEST = Gauge("spinbot_gc_pause_longest_seconds",
                         "The longest garbage-collector pause since the process started, by generation", ["generation"])


def watch_gc() -> None:
    """Time every collection of this process into GC_PAUSE and GC_PAUSE_LONGEST (gc.callbacks); for
    entrypoints, once."""
    started = 0.0
    longest = [0.0, 0.0, 0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
            return
        pause, gen = time.perf_counter() - started, int(info["generation"])
        GC_PAUSE.labels(str(gen)).observe(pause)
        if pause > longest[gen]:
            longest[gen] = pause
            GC_PAUSE_LONGEST.labels(str(gen)).set(pause)

    gc.callbacks.append(timed)
