"""Jobs: submit a graph, list, inspect, follow (SSE, resumable) and cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from conversation import admission
from conversation.answers import REVIEW_ASK, running_note
from conversation.auth import match_key
from conversation.services import Services
from conversation.turns import OPEN
from conversation.views import (
    LIVE_FIELDS,
    artifacts_in_graph,
    job_from_row,
    job_from_state,
    job_links,
    signed_path,
    with_live,
)
from spinbot.errors import Problem, not_found
from spinbot.queue import valid_id
from web.deps import OwnerDep, ServicesDep, bearer, unauthorized
from web.paging import Before, Limit, page
from web.routes.chat import base_url
from web.sse import encode, open_stream

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


class JobRequest(BaseModel):
    graph: dict[str, Any] = Field(description="a langgraph.v1 graph")
    conversation_id: str | None = Field(default=None, description="link the job to this conversation's last plan")


def job_reader(
    services: ServicesDep, job_id: str,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    exp: Annotated[str | None, Query(description="signed job link: expiry (unix seconds)")] = None,
    sig: Annotated[str | None, Query(description="signed job link: signature")] = None,
) -> str | None:
    """Who may read this job: the key's owner, or None (whoever made it) for a valid signed job link.

    Signed links (the job pages that chat answers link to) are read-only: cancelling needs the key.
    """
    if services.links.verify_job(job_id, exp, sig):
        return None
    owner = match_key(services.settings, credentials.credentials if credentials else None)
    if owner is None:
        if exp or sig:
            raise Problem("unauthorized", "this job link has expired or is not valid",
                          hint="ask about the job in the chat for a fresh link, or send an API key")
        raise unauthorized()
    return owner


JobReaderDep = Annotated[str | None, Depends(job_reader)]


async def owned_job(services: Services, job_id: str, owner: str | None) -> dict[str, Any]:
    """The job's current view if `owner` made it (None: any owner); 404 otherwise (absent and foreign alike)."""
    state = await services.queue.get(job_id)
    if state is not None:
        if owner is not None and state.owner != owner:
            raise not_found("job", job_id)
        return job_from_state(state)
    row = await services.store.get_job(job_id, owner)
    if row is None:
        raise not_found("job", job_id)
    return job_from_row(row)


@router.post("", status_code=202, summary="Run a graph (evaluated first; 422 with findings)")
async def create_job(
    services: ServicesDep, owner: OwnerDep, request: Request,
    body: Annotated[JobRequest, Body(openapi_examples={"graph": {"value": {"graph": {
        "schema": "langgraph.v1", "workflowId": "hello",
        "nodes": [{"id": "a", "service": "diag.echo", "plane": "control", "params": {"text": "hi"}}]}}}})],
) -> JSONResponse:
    if body.conversation_id and await services.repo.get_conversation(body.conversation_id, owner) is None:
        raise not_found("conversation", body.conversation_id)
    admitted = await admission.admit(services, body.graph, owner)
    job_id, verdict = admitted.job_id, admitted.verdict
    if body.conversation_id:
        # A reviewed plan now runs: its message becomes an open turn nobody follows (conversation/turns.py), so
        # whichever API sweeps next writes the final answer with links into the conversation at the job's end.
        turn = await services.repo.link_job(body.conversation_id, job_id, ask=REVIEW_ASK, running=running_note(job_id),
                                            metadata={"turn": OPEN, "base_url": base_url(request)})
        if turn is not None:
            await services.turns.let_go(turn)
    links = job_links(job_id)
    return JSONResponse({"id": job_id, "status": "queued", **links,
                         "evaluation": verdict.to_json() | {"graph": None}},
                        status_code=202, headers={"Location": links["url"]})


@router.get("", summary="The caller's jobs, newest first (page with `before`)")
async def list_jobs(
    services: ServicesDep, owner: OwnerDep,
    limit: Limit = 20,
    before: Before = None,
) -> dict[str, Any]:
    rows = await services.store.list_jobs(owner, limit=limit, before=before)
    live = await services.queue.live_fields([r["id"] for r in rows], list(LIVE_FIELDS))
    items = [with_live(job_from_row(r), fields) for r, fields in zip(rows, live, strict=True)]
    for item, row in zip(items, rows, strict=True):
        if item["status"] in STOPPED and row.get("completed_share") is not None:
            item["progress"] = row["completed_share"]
    return page(items, rows, limit, "created_at")


@router.get("/{job_id}", summary="A job: graph, status, progress, artifacts, recent events")
async def get_job(services: ServicesDep, owner: JobReaderDep, job_id: str) -> dict[str, Any]:
    job = await owned_job(services, job_id, owner)
    if "graph" not in job:
        row = await services.store.get_job(job_id, owner)
        job["graph"] = row["graph"] if row else {}
    recorded = {a["key"]: a for a in artifacts_in_graph(job["graph"])}
    for a in await services.store.artifacts(job_id):
        recorded.setdefault(a["key"], {"node": a["node_id"], "name": a["name"], "key": a["key"],
                                       "contentType": a["content_type"], "size": a["size"], "sha256": a["sha256"]})
    job["artifacts"] = [a | {"url": signed_path(a["key"], services.links)} for a in recorded.values()]
    job["events"] = await recent_events(services, job_id)
    if job.get("status") in STOPPED:
        job["progress"] = completed_share(job["graph"])
    return job


#: Jobs that ended without finishing: their progress is the share of the work that completed (the
#: runtime counts every finished node, failed and cancelled ones too, and would say 100 %).
STOPPED = ("failed", "cancelled")


def completed_share(graph: dict[str, Any]) -> float:
    """The weighted share of the graph's nodes that completed."""
    nodes = graph.get("nodes") or []
    weights = [float(n.get("progressWeight") or 1.0) for n in nodes]
    done = sum(w for n, w in zip(nodes, weights, strict=True) if n.get("status") == "completed")
    return done / sum(weights) if weights else 0.0


async def recent_events(services: Services, job_id: str, count: int = 50) -> list[dict[str, Any]]:
    if events := await services.queue.recent_events(job_id, count):
        return [{"id": e.id, "type": e.type, "data": e.data} for e in events]
    return [{"id": r["event_id"], "type": r["type"], "data": r["data"]}
            for r in await services.store.events(job_id, limit=count)]


@router.get("/{job_id}/events", summary="The job's events as SSE; resumable with Last-Event-ID",
            response_description="text/event-stream: job, node, progress, artifact, log events")
async def job_events(
    request: Request, services: ServicesDep, owner: JobReaderDep, job_id: str,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[str | None, Query(description="resume after this event id (when headers cannot be set)")] = None,
) -> Any:
    await owned_job(services, job_id, owner)
    start = valid_id(last_event_id or after)

    async def events() -> AsyncIterator[bytes | None]:
        async for ev in services.queue.follow(job_id, start, idle_s=services.settings.sse_ping_s):
            if ev is None:
                yield None
                continue
            data = ev.data | {"job_id": job_id}
            if ev.type == "artifact" and isinstance(ev.data.get("key"), str):  # playable without a key
                data["url"] = signed_path(ev.data["key"], services.links)
            yield encode(ev.type, data, ev.id)

    # A signed link's readers share slots of their own, per job (they have no key).
    return await open_stream(services, owner or f"link:{job_id}", events())


@router.post("/{job_id}/cancel", summary="Cancel a job: running nodes stop, the rest are marked cancelled")
async def cancel_job(services: ServicesDep, owner: OwnerDep, job_id: str) -> dict[str, Any]:
    await owned_job(services, job_id, owner)
    cancelled = await services.queue.cancel(job_id)
    state = await services.queue.get(job_id)
    if not cancelled and state is not None and not state.terminal:
        raise Problem("cancel_failed", f"job {job_id} could not be cancelled now",
                      hint="retry in a moment")
    return {"id": job_id, "cancelled": cancelled, "status": state.status if state else None}


def retry_graph(graph: dict[str, Any], job_id: str) -> dict[str, Any]:
    """A stopped job's graph as a new job's: every node pending again (no output, error or attempts), and
    `metadata.retry.of` naming the job. What completed is reused by the node cache, not carried over: a new job's
    nodes never arrive with state (the evaluator's `preset_state`), and a reused artifact is checked to exist."""
    nodes = [{k: v for k, v in n.items() if k not in ("output", "error", "attempts")} | {"status": "pending"}
             for n in graph.get("nodes") or []]
    metadata = dict(graph.get("metadata") or {})
    metadata["retry"] = {"of": job_id}
    return {**graph, "nodes": nodes, "metadata": metadata}


@router.post("/{job_id}/retry", status_code=202,
             summary="Run a failed or cancelled job again as a new job: what completed is reused, the rest runs")
async def retry_job(services: ServicesDep, owner: OwnerDep, job_id: str) -> JSONResponse:
    job = await owned_job(services, job_id, owner)
    if job["status"] not in STOPPED:
        raise Problem("not_retryable",
                      f"job {job_id} is {job['status']}: only a failed or cancelled job can be retried",
                      hint="wait for it to end (or cancel it) first; a completed job is done")
    if "graph" not in job:
        row = await services.store.get_job(job_id, owner)
        job["graph"] = row["graph"] if row else {}
    graph = admission.parse_graph(services.settings, retry_graph(dict(job["graph"]), job_id))
    admitted = await admission.admit(services, graph, owner, pipeline=job.get("pipeline"))
    new_id, verdict = admitted.job_id, admitted.verdict
    reused = verdict.estimate.reused if verdict.estimate is not None and services.settings.node_cache else []
    links = job_links(new_id)
    return JSONResponse({"id": new_id, "status": "queued", "retry_of": job_id, "reused": reused,
                         "runs": [n.id for n in graph.nodes if n.id not in reused], **links,
                         "evaluation": verdict.to_json() | {"graph": None}},
                        status_code=202, headers={"Location": links["url"]})
