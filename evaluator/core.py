"""The evaluator: graph + merged manifest + limits -> verdict. Pure: no I/O, no clock, no globals but caches.

The checks live in modules named for what they check (structure, services, params, wiring, cost);
this module runs them in order. Learned estimates and the node cache's reuse come in as data.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from evaluator.cost import MIN_WEIGHT, check_limits, estimate, normalise_weights
from evaluator.model import Limits, Verdict
from evaluator.params import check_constraints, check_params
from evaluator.request import check_request
from evaluator.run import Run
from evaluator.services import check_services
from evaluator.structure import check_dag, check_fresh, check_ids, parse, predecessors
from evaluator.text import URL_RE, allowed_text, find_urls
from evaluator.wiring import check_refs, check_unused
from spinbot.estimates import EMPTY, EstimateTable
from spinbot.graph import Graph
from spinbot.graphstate import successors
from spinbot.manifest import MergedManifest

__all__ = ["MIN_WEIGHT", "URL_RE", "allowed_text", "evaluate", "find_urls"]


def evaluate(
    graph: Graph | dict[str, Any],
    manifest: MergedManifest,
    limits: Limits | None = None,
    *,
    declared: MergedManifest | None = None,
    estimates: EstimateTable = EMPTY,
    reused: Collection[str] = (),
) -> Verdict:
    """Check a graph against what can run now; the verdict carries the normalised graph and estimates.

    `manifest` is the live one (what runs now). With `declared` (the committed manifests), a node
    whose service is declared for a plane that has no live executor at all is a `plane_offline`
    warning, not an error: the job waits in that plane's queue until an executor joins. A service
    that a live executor reports unavailable is still an error, and one nobody declares is unknown.
    `estimates` (spinbot.estimates, learned from finished runs; empty: the declared estimates) gives
    each node's seconds; nodes in `reused` (spinbot.nodecache.plan_reuse) cost nothing.
    """
    parsed, schema_findings = parse(graph)
    if parsed is None:
        return Verdict(ok=False, findings=schema_findings)
    run = Run(parsed, manifest, limits or Limits(), schema_findings, declared=declared)
    ids = check_ids(run)
    check_fresh(run)
    preds = predecessors(run, ids)
    run.succs = successors(preds)
    specs = check_services(run)
    check_params(run, specs)
    check_refs(run, specs)
    order = check_dag(run, preds)
    verdict_estimate = None
    if order is not None:
        verdict_estimate = estimate(run, specs, preds, order, table=estimates, reused=reused)
        normalise_weights(run.graph, verdict_estimate.by_node)
    check_limits(run, verdict_estimate)
    check_constraints(run, specs)
    check_unused(run, specs)
    check_request(run)
    return Verdict(ok=not run.failed, findings=run.findings, estimate=verdict_estimate, graph=run.graph)
