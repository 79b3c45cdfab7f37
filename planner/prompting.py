"""The planner's prompts (versioned jinja2 templates in prompts/) and the compact plan's JSON schema."""

from __future__ import annotations

from typing import Any

from spinbot import prompts
from spinbot.graph import Attachment, AttachmentRef, Graph, iter_refs
from spinbot.manifest import MergedManifest, ServiceSpec

PROMPT_VERSION = "plan.v1"
MAX_STEPS = 8
EXAMPLE_GOAL = "a 20-second video about bees, male voice"


def render(name: str, **values: Any) -> str:
    return prompts.render(f"{PROMPT_VERSION}.{name}.j2", **values)


# ---- the manifest, compactly -----------------------------------------------------------------


def _describe_param(name: str, prop: dict[str, Any], required: bool) -> str:
    kind = prop.get("type") or "/".join(
        str(a.get("type")) for a in prop.get("anyOf", []) if a.get("type") not in (None, "null")
    )
    if "enum" in prop:
        kind = "|".join(map(str, prop["enum"]))
    low, high = prop.get("minimum"), prop.get("maximum")
    if low is not None or high is not None:
        kind += f" {'' if low is None else low}..{'' if high is None else high}"
    default = f" (default {prop['default']})" if "default" in prop and prop["default"] is not None else ""
    return f"{name}{'*' if required else ''}: {kind or 'any'}{default}"


def compact_service(spec: ServiceSpec) -> dict[str, Any]:
    props = spec.params.get("properties", {})
    required = set(spec.params.get("required", []))
    params = [_describe_param(k, p, k in required) for k, p in props.items() if k not in spec.inputs]
    inputs = [f"{k}{'*' if k in required else ''} <- {t}" for k, t in spec.inputs.items()]
    return {
        "id": spec.id,
        "planes": spec.planes,
        "description": spec.description.strip(),
        "params": ", ".join(params),
        "inputs": ", ".join(inputs),
        "outputs": ", ".join(f"{k}: {t}" for k, t in spec.outputs.items()),
    }


def offered(manifest: MergedManifest, *, include_hidden: bool = False) -> list[ServiceSpec]:
    """The services the planner may use: available now, diagnostics only when enabled."""
    return sorted(manifest.available(include_hidden=include_hidden), key=lambda s: s.id)


# ---- the compact plan --------------------------------------------------------------------------


def plan_schema(service_ids: list[str], max_steps: int = MAX_STEPS) -> dict[str, Any]:
    """What the LLM may write: every array and string bounded, services from the manifest only."""
    value = {"anyOf": [{"type": "string", "maxLength": 400}, {"type": "number"}, {"type": "boolean"}]}
    ref = {"type": "string", "maxLength": 64}
    step = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 24},
            "service": {"enum": service_ids},
            "params": {"type": "object", "maxProperties": 8, "additionalProperties": value},
            "inputs": {
                "type": "object",
                "maxProperties": 6,
                "additionalProperties": {"anyOf": [ref, {"type": "array", "maxItems": 8, "items": ref}]},
            },
        },
        "required": ["id", "service", "params", "inputs"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"steps": {"type": "array", "minItems": 1, "maxItems": max_steps, "items": step}},
        "required": ["steps"],
        "additionalProperties": False,
    }


def decompile(graph: Graph | dict[str, Any]) -> dict[str, Any]:
    """A graph as a compact plan (what the LLM writes): params, and inputs as "step.output"."""
    g = graph if isinstance(graph, Graph) else Graph.model_validate(graph)
    steps = []
    for n in g.nodes:
        wired = {name for name, _ in iter_refs(n.params)}
        inputs: dict[str, Any] = {}
        for name, ref in iter_refs(n.params):
            text = f"attachment:{ref.attachment}" if isinstance(ref, AttachmentRef) else f"{ref.node}.{ref.output}"
            if isinstance(n.params[name], list):
                inputs.setdefault(name, []).append(text)
            else:
                inputs[name] = text
        params = {k: v for k, v in n.params.items() if k not in wired}
        steps.append({"id": n.id, "service": n.service, "params": params, "inputs": inputs})
    return {"steps": steps}


def example_plan(manifest: MergedManifest) -> dict[str, Any] | None:
    """The talking-head pipeline as a compact plan, when its services are all available now."""
    from planner.pipelines import build_graph

    graph = build_graph("f5tts_infinitetalk", {"topic": "bees", "duration_s": 20, "voice": "male"})
    available = {s.id for s in manifest.available()}
    if any(n.service not in available for n in graph.nodes):
        return None
    return decompile(graph)


def system_prompt(
    manifest: MergedManifest,
    schema: dict[str, Any],
    constraints: dict[str, Any],
    *,
    include_hidden: bool = False,
) -> str:
    return render(
        "system",
        services=[compact_service(s) for s in offered(manifest, include_hidden=include_hidden)],
        schema=schema,
        constraints=constraints,
        max_steps=MAX_STEPS,
        example=example_plan(manifest),
        example_goal=EXAMPLE_GOAL,
    )


def user_prompt(goal: str, attachments: list[Attachment], previous: dict[str, Any] | None) -> str:
    return render("user", goal=goal, attachments=attachments, previous=previous)


def repair_prompt(findings: list[dict[str, Any]]) -> str:
    return render("repair", findings=findings)
