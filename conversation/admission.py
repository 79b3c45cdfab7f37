"""What a graph must pass before it runs: size, the contract, the evaluator, the owner's job limit."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import ValidationError

from conversation import profiles
from conversation.ownership import check_objects
from conversation.services import Services
from evaluator import evaluate as run_evaluator
from evaluator.model import Limits, Verdict
from spinbot.capabilities import declared_manifest, live_manifest
from spinbot.errors import Problem
from spinbot.graph import Graph
from spinbot.nodecache import NodeCache
from spinbot.queue import Job
from spinbot.settings import Settings

log = logging.getLogger(__name__)


def limits(settings: Settings) -> Limits:
    return Limits.of(settings)


def check_graph_size(settings: Settings, nodes: int) -> None:
    if nodes > settings.max_graph_nodes:
        raise Problem("graph_too_large", f"the graph has {nodes} nodes; the limit is {settings.max_graph_nodes}",
                      hint="split the work into smaller jobs")


def parse_graph(settings: Settings, doc: Any) -> Graph:
    """The contract's Graph from untrusted JSON: 413 when too big, 422 with the schema errors otherwise."""
    if not isinstance(doc, dict):
        raise Problem("invalid_graph", "a graph is a JSON object (langgraph.v1)",
                      hint="send {\"graph\": {...}} or the graph itself; see manifests/langgraph.v1.schema.json")
    nodes = doc.get("nodes")
    if isinstance(nodes, list):
        check_graph_size(settings, len(nodes))
    try:
        return Graph.model_validate(doc)
    except ValidationError as e:
        errors = [{"loc": [str(x) for x in err["loc"]], "msg": err["msg"]} for err in e.errors()[:50]]
        raise Problem("invalid_graph", f"the graph does not follow langgraph.v1 ({e.error_count()} errors)",
                      errors=errors,
                      hint="fix the listed fields; the schema is manifests/langgraph.v1.schema.json") from None


async def evaluate(services: Services, graph: Graph | dict[str, Any], owner: str | None = None) -> Verdict:
    """The evaluator's verdict for every path that admits a graph: a queue queues.

    Checked against the live manifest and the committed one: a service declared for a plane that
    has no executor online now is a `plane_offline` warning (the job waits for one), a live service
    that reports itself unavailable is `service_unavailable`, an undeclared one `unknown_service`.
    The estimate is the one learned from the jobs that ran (services.estimates, a lookup), with the
    nodes `owner`'s node cache would answer counted as reused (spinbot/nodecache.py).
    """
    manifest = await live_manifest(services.redis)
    table = services.estimates.table(services.spawn)
    reused: dict[str, str] = {}
    if owner is not None:
        try:
            parsed = graph if isinstance(graph, Graph) else Graph.model_validate(graph)
            specs = {**declared_manifest().services, **manifest.services}
            reused = await NodeCache(services.store.pool).reusable(owner, parsed, specs, services.settings)
        except (ValidationError, asyncpg.PostgresError, OSError):
            pass  # an invalid graph gets its findings below; no cache: nothing is reused
    return run_evaluator(graph, manifest, limits(services.settings), declared=declared_manifest(),
                         estimates=table, reused=reused)


def refuse(verdict: Verdict) -> Problem:
    errors = verdict.errors
    first = errors[0] if errors else None
    detail = f"the evaluator refused the graph: {verdict.summary()}"
    return Problem("graph_refused", detail, findings=[f.model_dump(mode="json") for f in verdict.findings],
                   hint=(first.hint or first.message) if first else "fix the findings and retry")


@dataclass(frozen=True, slots=True)
class Admitted:
    """A graph that became a job: the job (spinbot.queue.Job: its id, events, state, cancel), the graph as the
    evaluator approved it, and the verdict."""

    job: Job
    graph: Graph
    verdict: Verdict

    @property
    def job_id(self) -> str:
        return self.job.id


async def admit(services: Services, graph: Graph | dict[str, Any], owner: str, *, pipeline: str | None = None,
                verdict: Verdict | None = None) -> Admitted:
    """The one way a graph becomes a job, for every path (chat, replans, /api/jobs, retries, pipelines,
    profiles): the contract and size (parse_graph: 422 invalid_graph, 413), the evaluator (`evaluate`,
    once: a `verdict` it already gave for this graph is used as it is; 422 graph_refused with the findings),
    then `submit` (objects of other keys: 404; a profile's name: 409; the owner's job limit: 429)."""
    parsed = graph if isinstance(graph, Graph) else parse_graph(services.settings, graph)
    verdict = verdict or await evaluate(services, parsed, owner)
    if not verdict.ok:
        raise refuse(verdict)
    approved = verdict.graph or parsed
    return Admitted(await submit(services, approved, owner, pipeline=pipeline), approved, verdict)


async def submit(services: Services, graph: Graph, owner: str, *, pipeline: str | None = None) -> Job:
    """Evaluate-approved graph -> a job (JobQueue.run), within the owner's concurrent job limit (`admit` calls it).

    This is where a graph that names another key's objects is refused (404 naming the field; see
    conversation.ownership).
    """
    await check_objects(services, graph, owner)
    save = await profiles.check_save(services, graph, owner)  # a graph that saves a profile
    # the owner's job limit is checked by the submit itself, in one Redis script: exact across APIs
    job = await services.queue.run(graph, owner=owner, pipeline=pipeline,
                                   max_unfinished=services.settings.max_jobs_per_key)
    if save is not None:
        try:
            await profiles.save_started(services, owner, save, graph, job.id)
        except Problem:  # the name was taken meanwhile (a graph saving it sent at the same time): refused, so not run
            await job.cancel()
            raise
    return job
