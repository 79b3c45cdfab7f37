"""The provisioned Grafana dashboard: valid JSON, and it queries only metrics spinbot/metrics.py exposes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import spinbot.metrics  # registers every Spinbot metric in the default registry
from spinbot import ROOT

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "spinbot.json"

# Sample names each metric type exposes on /metrics (prometheus_client's exposition format).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
}

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "le",
}


def exposed_names() -> set[str]:
    """Every sample name the registry's Spinbot metrics can expose, labelled or not, observed or not."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("spinbot_"):
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
            names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions, labels or keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors and subqueries
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", expr):
        word, call = m.group(1), m.group(2)
        if not call and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query, rows' nested panels included."""
    found: list[tuple[str, str]] = []
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        found.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))
    return found


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, service) (rate(spinbot_node_duration_seconds_bucket"
        '{plane="gpu"}[$__rate_interval]))) / on (service) group_left sum(up{job="x"})'
    )
    assert metric_names(expr) == {"spinbot_node_duration_seconds_bucket", "up"}
    assert metric_names("sum(spinbot_sse_streams_open) or vector(0)") == {"spinbot_sse_streams_open"}


def test_dashboard_is_valid_json_with_panels(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert len(targets(dashboard)) >= 6


def test_every_queried_metric_is_exposed(dashboard: dict[str, Any]) -> None:
    exposed = exposed_names()
    for title, expr in targets(dashboard):
        used = metric_names(expr)
        assert used, f"{title!r}: {expr!r} selects no metric"
        assert used <= exposed, f"{title!r} queries {sorted(used - exposed)}, not in spinbot/metrics.py"


def test_dashboard_covers_the_issue(dashboard: dict[str, Any]) -> None:
    """Jobs by status, node duration by service, planner attempts and fallbacks, SSE streams, GPU memory."""
    used = set().union(*(metric_names(expr) for _, expr in targets(dashboard)))
    for metric in (
        "spinbot_jobs_total",
        "spinbot_node_duration_seconds_bucket",
        "spinbot_planner_attempts_total",
        "spinbot_planner_fallbacks_total",
        "spinbot_sse_streams_open",
        "spinbot_gpu_memory_bytes",
    ):
        assert metric in used, f"the dashboard does not show {metric}"


def metric_labels() -> dict[str, set[str]]:
    """Sample name -> label names, from the metric objects in spinbot/metrics.py."""
    labels: dict[str, set[str]] = {}
    for obj in vars(spinbot.metrics).values():
        if isinstance(obj, MetricWrapperBase):
            family = next(iter(obj.describe()))
            for suffix in SUFFIXES[family.type]:
                labels[family.name + suffix] = set(obj._labelnames)  # noqa: SLF001  (no public accessor)
    return labels


def test_queries_group_by_real_labels(dashboard: dict[str, Any]) -> None:
    """Every `by (...)` label is a label of a metric the query selects (or `le`), so no panel is silently empty."""
    labels = metric_labels()
    for title, expr in targets(dashboard):
        available = set().union(*(labels.get(m, set()) for m in metric_names(expr))) | {"le"}
        for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for label in filter(None, re.split(r"[,\s]+", group)):
                assert label in available, f"{title!r}: no metric in {expr!r} has the label {label!r}"


def test_grafana_provisioning_points_at_the_dashboard(dashboard: dict[str, Any]) -> None:
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == uid for p in panels)
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/spinbot.yml").read_text())
    compose = (ROOT / "compose.yaml").read_text()
    assert f"./deploy/grafana/dashboards:{providers['providers'][0]['options']['path']}:ro" in compose
