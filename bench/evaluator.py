"""Evaluator latency by graph size: `python bench/evaluator.py` prints a table (target: < 5 ms at 100 nodes)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluator import Limits, evaluate  # noqa: E402
from evaluator.cli import committed_manifest  # noqa: E402
from spinbot.graph import Graph  # noqa: E402


def layered_graph(n: int) -> dict[str, Any]:
    """n diagnostic nodes in layers of four on both planes; each reads the text and data of the layer before."""
    nodes: list[dict[str, Any]] = []
    for i in range(n):
        params: dict[str, Any] = {"text": f"node {i}"}
        if i >= 4:
            params = {
                "text": {"$node": f"n{i - 4}", "output": "text"},
                "data": [{"$node": f"n{i - 3 - (i % 3)}", "output": "data"}],
            }
        nodes.append({"id": f"n{i}", "service": "diag.echo", "plane": ("control", "gpu")[i % 2], "params": params})
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(0, n - 1, 4)]
    return {"schema": "langgraph.v1", "workflowId": f"bench-{n}", "nodes": nodes, "edges": edges}


def timed(fn: Any, repeat: int) -> list[float]:
    fn()  # warm caches (compiled schemas)
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    manifest = committed_manifest()
    limits = Limits(max_nodes=500, max_fan_out=16)
    print(f"{'nodes':>6} {'input':>6} {'median ms':>10} {'p95 ms':>8} {'findings':>9}")
    for n in (10, 50, 100, 200, 500):
        doc = layered_graph(n)
        graph = Graph.model_validate(doc)
        for label, arg in (("dict", doc), ("Graph", graph)):
            verdict = evaluate(arg, manifest, limits)
            assert verdict.ok, verdict.summary()
            samples = timed(lambda arg=arg: evaluate(arg, manifest, limits), 30 if n <= 100 else 10)
            p95 = statistics.quantiles(samples, n=20)[-1]
            print(f"{n:>6} {label:>6} {statistics.median(samples):>10.2f} {p95:>8.2f} {len(verdict.findings):>9}")


if __name__ == "__main__":
    main()
