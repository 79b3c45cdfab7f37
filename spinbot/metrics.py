"""Prometheus metrics, one name each; the API and every executor expose them on /metrics."""

from __future__ import annotations

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
