"""The fixed pipelines of manifests/pipelines.json: parameterised graph templates, the planner's fallback."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from functools import cache
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spinbot import MANIFESTS_DIR
from spinbot.errors import PermanentError
from spinbot.graph import Attachment, Context, Edge, Graph, Node, NodeRef, iter_refs

PIPELINES_PATH = MANIFESTS_DIR / "pipelines.json"
_OMIT = object()
#: Pipeline params whose value names an attachment of the run: by its id, its file name, its key, or the id of the
#: upload it is (POST /api/uploads); an upload's key (`uploads/...`) is attached to the run when it is not already.
ATTACHMENT_PARAMS = ("portrait",)
_UPLOAD_ID = re.compile(r"^uploads/[^/]+/([^/]+)/")


class PipelineError(PermanentError):
    code = "invalid_pipeline_params"


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    params_schema: dict[str, Any]
    graph: dict[str, Any] = Field(description="the template: nodes with $param / $if placeholders")

    def public(self) -> dict[str, Any]:
        """What the API lists: name, description, params schema."""
        return self.model_dump(include={"name", "description", "params_schema"})


@cache
def _load() -> dict[str, Pipeline]:
    doc = json.loads(PIPELINES_PATH.read_text())
    return {name: Pipeline(name=name, **spec) for name, spec in doc["pipelines"].items()}


def list_pipelines() -> list[Pipeline]:
    return list(_load().values())


def get_pipeline(name: str) -> Pipeline:
    try:
        return _load()[name]
    except KeyError:
        raise PipelineError(f"no pipeline named {name!r}", hint=f"pipelines: {', '.join(_load())}") from None


def with_defaults(pipeline: Pipeline, params: dict[str, Any]) -> dict[str, Any]:
    """Validate params against the pipeline's schema and fill in its defaults."""
    if not isinstance(params, dict):
        raise PipelineError(f"params of {pipeline.name} must be an object")
    errors = sorted(
        jsonschema.Draft202012Validator(pipeline.params_schema).iter_errors(params), key=lambda e: list(e.path)
    )
    if errors:
        details = "; ".join(f"{'/'.join(map(str, e.path)) or '(params)'}: {e.message}" for e in errors[:5])
        raise PipelineError(
            f"bad params for pipeline {pipeline.name}: {details}",
            hint=f"params schema: {json.dumps(pipeline.params_schema['properties'])[:500]}",
        )
    props = pipeline.params_schema.get("properties", {})
    filled = {k: p["default"] for k, p in props.items() if "default" in p}
    filled.update(params)
    return filled


def _substitute(value: Any, params: dict[str, Any]) -> Any:
    """Fill a template value: {"$param": name} and {"$if": name, "then": x, "else": y}; _OMIT drops it."""
    if isinstance(value, list):
        return [v for v in (_substitute(item, params) for item in value) if v is not _OMIT]
    if not isinstance(value, dict):
        return value
    if "$param" in value:
        return params.get(value["$param"], _OMIT)
    if "$if" in value:
        branch = value.get("then", _OMIT) if _holds(value["$if"], params) else value.get("else", _OMIT)
        return _substitute(branch, params)
    out = {}
    for k, v in value.items():
        filled = _substitute(v, params)
        if filled is not _OMIT:
            out[k] = filled
    return out


def _holds(condition: str, params: dict[str, Any]) -> bool:
    if condition.startswith("!"):
        return not params.get(condition[1:])
    return bool(params.get(condition))


def edges_from_refs(nodes: list[Node]) -> list[Edge]:
    """One explicit edge per (upstream, downstream) pair that a data reference implies, in node order."""
    ids = {n.id for n in nodes}
    edges: list[Edge] = []
    for n in nodes:
        sources: list[str] = []
        for _, ref in iter_refs(n.params):
            if isinstance(ref, NodeRef) and ref.node in ids and ref.node not in sources and ref.node != n.id:
                sources.append(ref.node)
        edges.extend(Edge.model_validate({"from": s, "to": n.id}) for s in sources)
    return edges


def render_nodes(pipeline: Pipeline, params: dict[str, Any]) -> list[Node]:
    """The template's nodes for these (complete) params; planes are left to the evaluator to fix.
    ValidationError when a substituted param makes a node the contract refuses."""
    nodes = []
    for tmpl in pipeline.graph["nodes"]:
        if "if" in tmpl and not _holds(tmpl["if"], params):
            continue
        node = {"plane": "control"} | {k: v for k, v in tmpl.items() if k != "if"}
        node["params"] = _substitute(node.get("params", {}), params)
        nodes.append(Node.model_validate(node))
    return nodes


def build_graph(
    name: str,
    params: dict[str, Any],
    *,
    goal: str = "",
    attachments: Iterable[Attachment | dict[str, Any]] = (),
    constraints: dict[str, Any] | None = None,
) -> Graph:
    """The pipeline's graph for `params`; PipelineError (with a hint) on bad params or attachments."""
    pipeline = get_pipeline(name)
    atts = [a if isinstance(a, Attachment) else Attachment.model_validate(a) for a in attachments]
    full = with_defaults(pipeline, named_attachments(params, atts) if isinstance(params, dict) else params)
    _check_attachments(pipeline, full, atts)
    try:
        nodes = render_nodes(pipeline, full)
        return Graph(
            schema="langgraph.v1", workflowId=f"{name}-{uuid.uuid4().hex[:12]}",
            context=Context(goal=goal, inputs=dict(params), attachments=atts, constraints=dict(constraints or {})),
            metadata={"pipeline": name, "params": full}, nodes=nodes, edges=edges_from_refs(nodes),
        )
    except ValidationError as e:
        raise PipelineError(f"pipeline {name} made an invalid graph: {e}") from e


def uploads_named(params: dict[str, Any]) -> list[str]:
    """The upload keys (`uploads/...`) that attachment params name: the run attaches them."""
    return [v for k in ATTACHMENT_PARAMS if isinstance(v := params.get(k), str) and _UPLOAD_ID.match(v)]


def named_attachments(params: dict[str, Any], attachments: list[Attachment]) -> dict[str, Any]:
    """`params` with each attachment param that names an attachment by its file name, key or upload id given
    its id instead (what the graph refers to); a value naming none is left for _check_attachments to refuse."""
    out = dict(params)
    for k in ATTACHMENT_PARAMS:
        value = out.get(k)
        if not isinstance(value, str) or any(a.id == value for a in attachments):
            continue
        found = [a for a in attachments if value in (a.key, a.name, _upload_id(a.key))]
        if len(found) == 1:
            out[k] = found[0].id
    return out


def _upload_id(key: str) -> str | None:
    m = _UPLOAD_ID.match(key)
    return m.group(1) if m else None


def _check_attachments(pipeline: Pipeline, params: dict[str, Any], attachments: list[Attachment]) -> None:
    """Params naming an attachment ("portrait") must name one that is there, of the right kind."""
    ids = {a.id: a for a in attachments}
    for key in ATTACHMENT_PARAMS:
        if key in params and key in pipeline.params_schema.get("properties", {}):
            att = ids.get(params[key])
            if att is None:
                listed = ", ".join(f"{a.id} ({a.name})" if a.name else a.id for a in attachments)
                raise PipelineError(
                    f"param {key} names attachment {params[key]!r}, which was not attached",
                    hint=f"name an attachment of the run by its id, file name or key, or an upload by its key "
                         f"(uploads/...); attachments: {listed or 'none'}",
                )
            if att.kind != "image":
                raise PipelineError(f"attachment {att.id} is {att.kind}; {key} needs an image")
