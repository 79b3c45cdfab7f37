"""Evaluator latency by graph size: `python bench/evaluator.py` prints two tables.

Target (issue 12): a 100-node graph evaluated in <= 2 ms from a dict. The second table splits the
100-node dict case: the contract's model validation (spinbot.graph, before any check runs) and the
evaluator's own checks.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluator import Limits, evaluate  # noqa: E402
from spinbot.capabilities import committed_manifest  # noqa: E402
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


def timed(fn: Any, repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds per call; CPU time is what a busy shared machine does not inflate."""
    fn()  # warm caches (compiled schemas)
    wall, cpu = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
    return wall, cpu


def main() -> None:
    manifest = committed_manifest()
    limits = Limits(max_nodes=500, max_fan_out=16)
    print(f"{'nodes':>6} {'input':>6} {'wall median ms':>15} {'wall p95 ms':>12} {'CPU median ms':>14} {'findings':>9}")
    for n in (10, 50, 100, 200, 500):
        doc = layered_graph(n)
        graph = Graph.model_validate(doc)
        for label, arg in (("dict", doc), ("Graph", graph)):
            verdict = evaluate(arg, manifest, limits)
            assert verdict.ok, verdict.summary()
            wall, cpu = timed(lambda arg=arg: evaluate(arg, manifest, limits), 50 if n <= 100 else 10)
            p95 = statistics.quantiles(wall, n=20)[-1]
            print(
                f"{n:>6} {label:>6} {statistics.median(wall):>15.2f} {p95:>12.2f} "
                f"{statistics.median(cpu):>14.2f} {len(verdict.findings):>9}"
            )
    doc = layered_graph(100)
    graph = Graph.model_validate(doc)
    total = statistics.median(timed(lambda: evaluate(doc, manifest, limits), 100)[1])
    parse = statistics.median(timed(lambda: Graph.model_validate(doc), 100)[1])
    print(f"\n100 nodes from a dict, CPU median ms: {total:.2f} in all = {parse:.2f} Graph.model_validate "
          f"({100 * parse / total:.0f} %) + {total - parse:.2f} the evaluator's checks and estimate")
    assert evaluate(graph, manifest, limits).ok


if __name__ == "__main__":
    main()
