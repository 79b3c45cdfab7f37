"""Capabilities, planning, evaluation and the fixed pipelines (which work with no LLM at all)."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from evaluator import evaluate as run_evaluator
from evaluator.model import Verdict
from spinbot.capabilities import declared_manifest, live_manifest
from spinbot.errors import SpinbotError
from spinbot.graph import Graph
from spinbot.history import EstimatesCache
from spinbot.nodecache import NodeCache
from web import admission
from web.attachments import AttachmentIn, store_attachments
from web.deps import OwnerDep, ServicesDep
from web.problems import Problem, not_found
from web.views import job_links

router = APIRouter(tags=["planning"])


class PlanBody(BaseModel):
    goal: str = Field(min_length=1, max_length=20_000, description="what you want, in words")
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=8)
    conversation_id: str | None = Field(default=None, description="plan as a follow-up in this conversation")


class EvaluateBody(BaseModel):
    graph: dict[str, Any] = Field(description="a langgraph.v1 graph")


class RunBody(BaseModel):
    params: dict[str, Any] = Field(default_factory=dict, description="the pipeline's params (see GET /api/pipelines)")
    goal: str = Field(default="", max_length=20_000)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=8)


@router.get("/api/capabilities", summary="The merged live manifest: what can run now, per plane")
async def capabilities(services: ServicesDep, owner: OwnerDep) -> dict[str, Any]:
    return (await live_manifest(services.redis)).to_json()


@router.post("/api/evaluate", summary="Check a graph as POST /api/jobs would admit it (no run)")
async def evaluate(services: ServicesDep, owner: OwnerDep, body: EvaluateBody) -> dict[str, Any]:
    nodes = body.graph.get("nodes")
    if isinstance(nodes, list):
        admission.check_graph_size(services.settings, len(nodes))
    return (await learned_evaluation(services, owner, body.graph)).to_json()


@router.post("/api/plan", summary="Plan a goal into an evaluated graph without running it")
async def plan(services: ServicesDep, owner: OwnerDep, body: PlanBody) -> dict[str, Any]:
    from web.chat import plan_goal

    history: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    if body.conversation_id:
        if await services.repo.get_conversation(body.conversation_id, owner) is None:
            raise not_found("conversation", body.conversation_id)
        history, previous = await _history(services, body.conversation_id)
    attachments = await store_attachments(services, owner, body.attachments)
    result = await plan_goal(services, body.goal, history=history, previous=previous, attachments=attachments,
                             owner=owner)
    out = result_json(result)
    if result.graph is not None and out["evaluation"] is not None:  # the estimate learned from runs, with reuse
        learned = await learned_evaluation(services, owner, result.graph)
        if learned.estimate is not None:
            out["evaluation"]["estimate"] = learned.estimate.model_dump(mode="json")
    return out


def estimates(services: ServicesDep) -> EstimatesCache:
    """The app's learned-estimates table, refreshed from Postgres in the background every minute."""
    cache = vars(services).get("estimates")
    if cache is None:
        cache = vars(services)["estimates"] = EstimatesCache(services.store.pool, lambda: declared_manifest().services)
    return cache  # type: ignore[no-any-return]


async def learned_evaluation(services: ServicesDep, owner: str, graph: Graph | dict[str, Any]) -> Verdict:
    """admission.evaluate's verdict, with the learned estimates and the owner's node cache taken into account."""
    manifest = await live_manifest(services.redis)
    table = estimates(services).table(services.spawn)
    specs = {**declared_manifest().services, **manifest.services}
    reused: dict[str, str] = {}
    try:
        parsed = graph if isinstance(graph, Graph) else Graph.model_validate(graph)
        reused = await NodeCache(services.store.pool).reusable(owner, parsed, specs)
    except (ValidationError, asyncpg.PostgresError, OSError):
        pass  # an invalid graph gets its findings below; no cache: nothing is reused
    return run_evaluator(graph, manifest, admission.limits(services.settings), declared=declared_manifest(),
                         estimates=table, reused=reused)


async def _history(services: ServicesDep, conversation_id: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    from web.chat import history_of

    return history_of(await services.repo.messages(conversation_id))


def result_json(result: Any) -> dict[str, Any]:
    verdict = result.verdict
    return {
        "kind": result.kind,
        "reply": result.reply,
        "message": result.message,
        "graph": result.graph.to_json() if result.graph is not None else None,
        "evaluation": verdict.to_json() | {"graph": None} if verdict is not None else None,
        "attempts": result.attempts,
        "fallback": result.fallback,
    }


@router.get("/api/pipelines", summary="The fixed pipelines with their param schemas")
async def pipelines(owner: OwnerDep) -> dict[str, Any]:
    from planner.pipelines import list_pipelines

    return {"items": [p.public() for p in list_pipelines()]}


@router.post("/api/pipelines/{name}/runs", status_code=202,
             summary="Run a fixed pipeline (no LLM); 422 with evaluator findings on bad params")
async def run_pipeline(
    services: ServicesDep, owner: OwnerDep, name: str,
    body: Annotated[RunBody, Body(openapi_examples={"capabilities": {"value": {"params": {}}}})],
) -> JSONResponse:
    from planner.pipelines import build_graph, list_pipelines

    known = [p.name for p in list_pipelines()]
    if name not in known:
        raise Problem(404, f"there is no pipeline {name!r}", code="not_found", hint=f"pipelines: {', '.join(known)}")
    attachments = await store_attachments(services, owner, body.attachments)
    try:
        graph = build_graph(name, body.params, goal=body.goal, attachments=attachments)
    except SpinbotError as e:
        hint = e.hint or "check the params against GET /api/pipelines"
        raise Problem(422, e.message, code=e.code, hint=hint) from None
    verdict = await admission.evaluate(services, graph)
    if not verdict.ok:
        raise admission.refuse(verdict)
    job_id = await admission.submit(services, verdict.graph or graph, owner, pipeline=name)
    links = job_links(job_id)
    return JSONResponse({"id": job_id, "job_id": job_id, "status": "queued", "pipeline": name, **links,
                         "evaluation": verdict.to_json() | {"graph": None}},
                        status_code=202, headers={"Location": links["url"]})
