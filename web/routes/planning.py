"""Capabilities, planning, evaluation and the fixed pipelines (which work with no LLM at all)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from conversation import admission
from conversation.goals import history_of, plan_goal
from conversation.views import job_links
from planner.pipelines import build_graph, list_pipelines, uploads_named
from spinbot.capabilities import live_manifest
from spinbot.errors import Problem, not_found
from web.attachments import AttachmentIn, store_attachments
from web.deps import OwnerDep, ServicesDep

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
    return (await admission.evaluate(services, body.graph, owner)).to_json()


@router.post("/api/plan", summary="Plan a goal into an evaluated graph without running it")
async def plan(services: ServicesDep, owner: OwnerDep, body: PlanBody) -> dict[str, Any]:
    history: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    if body.conversation_id:
        if await services.repo.get_conversation(body.conversation_id, owner) is None:
            raise not_found("conversation", body.conversation_id)
        history, previous = await _history(services, body.conversation_id)
    attachments = await store_attachments(services, owner, body.attachments)
    result = await plan_goal(services, body.goal, history=history, previous=previous, attachments=attachments,
                             owner=owner)
    return result_json(result)


async def _history(services: ServicesDep, conversation_id: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
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
    return {"items": [p.public() for p in list_pipelines()]}


@router.post("/api/pipelines/{name}/runs", status_code=202,
             summary="Run a fixed pipeline (no LLM); 422 with evaluator findings on bad params")
async def run_pipeline(
    services: ServicesDep, owner: OwnerDep, name: str,
    body: Annotated[RunBody, Body(openapi_examples={"capabilities": {"value": {"params": {}}}})],
) -> JSONResponse:
    known = [p.name for p in list_pipelines()]
    if name not in known:
        raise Problem("not_found", f"there is no pipeline {name!r}", hint=f"pipelines: {', '.join(known)}")
    listed = {a.key for a in body.attachments if a.key}
    named = [AttachmentIn(key=k) for k in uploads_named(body.params) if k not in listed]
    attachments = await store_attachments(services, owner, [*body.attachments, *named])
    graph = build_graph(name, body.params, goal=body.goal, attachments=attachments)
    admitted = await admission.admit(services, graph, owner, pipeline=name)
    job_id, verdict = admitted.job_id, admitted.verdict
    links = job_links(job_id)
    return JSONResponse({"id": job_id, "job_id": job_id, "status": "queued", "pipeline": name, **links,
                         "evaluation": verdict.to_json() | {"graph": None}},
                        status_code=202, headers={"Location": links["url"]})
