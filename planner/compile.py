"""Compact plan (what the LLM wrote) -> langgraph.v1 graph: code derives ids, planes, wiring, weights, edges."""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import ValidationError

from planner.builder import node_weights
from planner.pipelines import edges_from_refs
from spinbot.graph import ID_PATTERN, Attachment, Context, Graph, Node
from spinbot.manifest import MergedManifest, ServiceSpec

#: For an unwired input, which upstream output names to prefer (first match wins).
PREFERRED_OUTPUTS: dict[str, tuple[str, ...]] = {
    "text": ("narration", "text"),
    "subtitles": ("narration", "text"),
    "prompt": ("stage", "narration", "text"),
    "title": ("title",),
}
ARTIFACT_TYPES = ("video", "audio", "image")
_ID_RE = re.compile(ID_PATTERN)


class PlanShapeError(ValueError):
    """The LLM's answer is JSON but not a plan: no list of steps."""


def _steps(plan: Any) -> list[dict[str, Any]]:
    steps = plan.get("steps") if isinstance(plan, dict) else None
    if not isinstance(steps, list) or not steps:
        raise PlanShapeError('a plan is {"steps": [...]} with at least one step')
    if not all(isinstance(s, dict) for s in steps):
        raise PlanShapeError("every step is an object with id, service, params and inputs")
    return steps


def _clean_id(raw: object, index: int, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.:-]", "_", str(raw or "")).strip("_.:-")[:48]
    if not base or not _ID_RE.match(base):
        base = f"step{index + 1}"
    out, n = base, 2
    while out in taken:
        out, n = f"{base}_{n}", n + 1
    taken.add(out)
    return out


def _parse_ref(text: object, ids: dict[str, str], attachments: set[str]) -> dict[str, str] | None:
    """ "step.output" or "attachment:ID" (also "@ID") as a reference; None when it is not one."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    for prefix in ("attachment:", "@", "$attachment:"):
        if text.startswith(prefix) and text[len(prefix) :] in attachments:
            return {"$attachment": text[len(prefix) :]}
    step, dot, output = text.partition(".")
    if dot and step in ids and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", output):
        return {"$node": ids[step], "output": output}
    return None


def _is_list_param(spec: ServiceSpec | None, name: str) -> bool:
    prop = spec.params.get("properties", {}).get(name, {}) if spec else {}
    return prop.get("type") == "array" or any(a.get("type") == "array" for a in prop.get("anyOf", []))


def _wire(
    spec: ServiceSpec | None,
    params: dict[str, Any],
    inputs: dict[str, Any],
    ids: dict[str, str],
    attachments: set[str],
) -> None:
    """Inputs ("step.output") become references; so do params that the LLM wrote as one."""
    for name, raw in inputs.items():
        if not isinstance(name, str):
            continue
        values = raw if isinstance(raw, list) else [raw]
        refs = [r for r in (_parse_ref(v, ids, attachments) for v in values) if r is not None]
        literal = [v for v in values if _parse_ref(v, ids, attachments) is None]
        if _is_list_param(spec, name):
            params[name] = refs + literal
        elif refs:
            params[name] = refs[0]
        elif literal:
            params[name] = literal[0]
    if spec is None:
        return
    for name in spec.inputs:
        ref = _parse_ref(params.get(name), ids, attachments)
        if ref is not None:
            params[name] = [ref] if _is_list_param(spec, name) else ref


def _autowire(
    spec: ServiceSpec, params: dict[str, Any], earlier: list[tuple[str, ServiceSpec]], attachments: list[Attachment]
) -> None:
    """Wire each required input the plan left open to the nearest earlier output of the right type."""
    required = set(spec.params.get("required", []))
    for name, wanted in spec.inputs.items():
        if name in params or (name not in required and name != "items"):
            continue
        ref = _nearest(name, wanted, earlier, attachments)
        if ref is not None:
            params[name] = [ref] if _is_list_param(spec, name) else ref


def _nearest(
    name: str, wanted: str, earlier: list[tuple[str, ServiceSpec]], attachments: list[Attachment]
) -> dict[str, str] | None:
    if wanted == "any":  # e.g. artifact.publish items: the latest artifact
        for node_id, spec in reversed(earlier):
            for out, kind in spec.outputs.items():
                if kind in ARTIFACT_TYPES:
                    return {"$node": node_id, "output": out}
        return None
    for node_id, spec in reversed(earlier):
        typed = [o for o, t in spec.outputs.items() if t == wanted]
        if typed:
            preferred = [o for o in PREFERRED_OUTPUTS.get(name, ()) if o in typed]
            return {"$node": node_id, "output": (preferred or typed)[0]}
    att = next((a for a in attachments if a.kind == wanted), None)
    return {"$attachment": att.id} if att is not None else None


def compile_plan(
    plan: Any,
    manifest: MergedManifest,
    *,
    goal: str,
    attachments: list[Attachment],
    constraints: dict[str, Any],
    workflow_id: str | None = None,
) -> Graph:
    """The graph for a compact plan; the evaluator judges it (PlanShapeError if there are no steps, or the
    steps make no langgraph.v1 graph)."""
    steps = _steps(plan)
    taken: set[str] = set()
    ids: dict[str, str] = {}  # what the plan calls a step (as written, or cleaned) -> node id
    node_ids: list[str] = []
    for i, step in enumerate(steps):
        raw = str(step.get("id") or "")
        node_id = _clean_id(raw, i, taken)
        node_ids.append(node_id)
        for key in (raw, node_id):
            if key:
                ids.setdefault(key, node_id)  # a reused id means its first step
    att_ids = {a.id for a in attachments}
    nodes: list[Node] = []
    earlier: list[tuple[str, ServiceSpec]] = []
    for step, node_id in zip(steps, node_ids, strict=True):
        service = str(step.get("service") or "")
        spec = manifest.services.get(service)
        params = dict(step.get("params") or {}) if isinstance(step.get("params"), dict) else {}
        raw_inputs = step.get("inputs")
        inputs: dict[str, Any] = raw_inputs if isinstance(raw_inputs, dict) else {}
        _wire(spec, params, inputs, {k: v for k, v in ids.items() if v != node_id}, att_ids)
        if spec is not None:
            _autowire(spec, params, earlier, attachments)
            earlier.append((node_id, spec))
        plane = spec.planes[0] if spec is not None else "control"
        try:
            nodes.append(Node(id=node_id, name=str(step.get("id") or node_id)[:200], service=service, plane=plane,
                              params=params))
        except ValidationError as e:
            raise PlanShapeError(f"step {node_id} is not a graph node: {e.error_count()} errors") from None
    node_weights(nodes, manifest)
    try:
        return Graph(schema="langgraph.v1", workflowId=workflow_id or f"plan-{uuid.uuid4().hex[:12]}",
                     context=Context(goal=goal[:20000], attachments=list(attachments), constraints=constraints),
                     nodes=nodes, edges=edges_from_refs(nodes))
    except ValidationError as e:
        raise PlanShapeError(f"the steps make no langgraph.v1 graph: {e.error_count()} errors") from None
