"""What a graph costs: learned per-node seconds, a list schedule of the DAG, weights, and the limits."""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection

from evaluator.model import Estimate
from evaluator.run import Run
from spinbot.estimates import EMPTY, EstimateTable, Span, planned_feature, predict_outputs
from spinbot.graph import Graph
from spinbot.manifest import ServiceSpec
from spinbot.units import duration_text

MIN_WEIGHT = 1e-4


def node_spans(
    run: Run, specs: dict[str, ServiceSpec], table: EstimateTable, reused: Collection[str], order: list[str]
) -> dict[str, Span]:
    """Each node's seconds with its range: 0 when reused, from the table (its prior when empty) otherwise, at
    the feature value known before the run (a text's length, a speech's predicted seconds downstream)."""
    nodes = {n.id: n for n in run.graph.nodes}
    predicted = predict_outputs((k, specs.get(k), nodes[k].params) for k in order)
    devices = {p: [str(d.get("name", "")) for d in s.devices] for p, s in run.manifest.planes.items()}
    zero = Span(0.0, 0.0, 0.0)
    out: dict[str, Span] = {}
    seen: dict[tuple[str, str, float | None], Span] = {}  # nodes of one service and size cost the same
    for n in run.graph.nodes:
        spec = specs.get(n.id)
        if spec is None or n.id in reused:
            out[n.id] = zero
            continue
        x = planned_feature(spec, n.params, predicted, n.id)
        key = (spec.id, n.plane, x)
        span = seen.get(key)
        if span is None:
            span = seen[key] = table.estimate(spec, n.plane, x, devices.get(n.plane, ()))
        out[n.id] = span
    return out


def schedule(run: Run, preds: dict[str, set[str]], order: list[str], seconds: dict[str, float]) -> float:
    """List-schedule the DAG: a node starts when its inputs are done and its plane is free; the makespan."""
    planes = {n.id: n.plane for n in run.graph.nodes}
    succs = run.succs
    indegree = {k: len(v) for k, v in preds.items()}
    position = {k: i for i, k in enumerate(order)}
    ready_at: dict[str, float] = dict.fromkeys(order, 0.0)
    heap = [(0.0, position[k], k) for k in order if indegree[k] == 0]
    heapq.heapify(heap)
    plane_free: dict[str, float] = {}
    end = 0.0
    while heap:
        ready, _, k = heapq.heappop(heap)
        plane = planes[k]
        free = plane_free.get(plane, 0.0)
        finish = (ready if ready > free else free) + seconds[k]
        plane_free[plane] = finish
        if finish > end:
            end = finish
        for s in succs[k]:
            if finish > ready_at[s]:
                ready_at[s] = finish
            indegree[s] -= 1
            if indegree[s] == 0:
                heapq.heappush(heap, (ready_at[s], position[s], s))
    return end


def estimate(
    run: Run,
    specs: dict[str, ServiceSpec],
    preds: dict[str, set[str]],
    order: list[str],
    *,
    table: EstimateTable = EMPTY,
    reused: Collection[str] = (),
) -> Estimate:
    """The graph's wall time (with its range, from the nodes' ranges scheduled alike), GPU-seconds, memory."""
    spans = node_spans(run, specs, table, reused, order)
    mid = {k: spans[k].seconds for k in order}
    end = schedule(run, preds, order, mid)
    # The range: the makespan scaled as the nodes' ranges scale the total (one schedule, not three).
    total = sum(mid.values()) or 1.0
    low = end * sum(s.low for s in spans.values()) / total
    high = end * sum(s.high for s in spans.values()) / total
    gpu_s = sum(mid[k] for k in order if k in specs and specs[k].gpu)
    nodes = {n.id: n for n in run.graph.nodes}
    kinds = {(specs[k].id, nodes[k].plane): k for k in order if k in specs and k not in reused}  # one per service
    memory = max((table.memory_mb(specs[k], plane) for (_, plane), k in kinds.items()), default=0)
    learned = sum(spans[k].runs for k in kinds.values())
    kept = sorted(k for k in reused if k in spans)
    return Estimate(duration_s=round(end, 3), gpu_s=round(gpu_s, 3), peak_memory_mb=memory, by_node=mid,
                    low_s=round(low, 3), high_s=round(high, 3), learned_runs=learned, reused=kept,
                    summary=describe(end, low, high, [nodes[k].name or k for k in kept]))


def describe(seconds: float, low: float, high: float, reused: list[str]) -> str:
    """"about 40 s (30-60 s)", then what is reused: "about 12 s (9-20 s): script and portrait are reused"."""
    text = f"about {_fmt(seconds, seconds >= 90)}"
    if high - low >= 1:
        minutes = high >= 90
        text += f" ({_fmt(low, minutes, unit=False)}-{_fmt(high, minutes)})"
    if reused:
        names = reused[0] if len(reused) == 1 else ", ".join(reused[:-1]) + " and " + reused[-1]
        text += f": {names} {'is' if len(reused) == 1 else 'are'} reused"
    return text


def _fmt(seconds: float, minutes: bool, *, unit: bool = True) -> str:
    """Seconds as whole seconds, or as minutes rounded up to the half minute."""
    value = f"{math.ceil(seconds / 30) / 2:g}" if minutes else f"{round(seconds):d}"
    return value + ((" min" if minutes else " s") if unit else "")


def normalise_weights(graph: Graph, durations: dict[str, float]) -> None:
    """Weights sum to 1; missing ones come from the nodes' share of the estimated time."""
    total = sum(durations.values())
    raw = []
    for n in graph.nodes:
        if n.progress_weight is not None:
            raw.append(n.progress_weight)
        elif total > 0:
            share = durations.get(n.id, 0.0) / total
            raw.append(share if share > MIN_WEIGHT else MIN_WEIGHT)
        else:
            raw.append(1.0 / len(graph.nodes))
    s = sum(raw)
    for n, w in zip(graph.nodes, raw, strict=True):
        share = round(w / s, 6)
        n.progress_weight = MIN_WEIGHT if share < MIN_WEIGHT else 1.0 if share > 1.0 else share


def check_limits(run: Run, estimate: Estimate | None) -> None:
    lim = run.limits
    if len(run.graph.nodes) > lim.max_nodes:
        run.add("too_many_nodes", f"{len(run.graph.nodes)} nodes; at most {lim.max_nodes} are allowed",
                hint=f"use at most {lim.max_nodes} nodes")
    for k, succ in run.succs.items():
        if len(succ) > lim.max_fan_out:
            run.add("fan_out", f"{len(succ)} nodes depend on {k}; at most {lim.max_fan_out} may", node=k,
                    hint=f"let at most {lim.max_fan_out} nodes use one node's outputs")
    if estimate is None:
        return
    if estimate.gpu_s > lim.max_gpu_s:
        run.add("gpu_budget",
                f"the graph needs about {estimate.gpu_s:.0f} GPU-seconds; the limit is {lim.max_gpu_s:.0f}",
                hint="use fewer or cheaper GPU steps")
    if lim.max_duration_s is not None and estimate.duration_s > lim.max_duration_s:
        run.add("too_slow",
                f"the graph takes {estimate.summary}; the limit is {duration_text(lim.max_duration_s)}",
                hint="use fewer or cheaper steps")
