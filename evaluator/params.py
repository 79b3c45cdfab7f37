"""Each node's params: names, schema, wired inputs, URLs, NUL characters, and the goal's constraints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evaluator.run import Run
from evaluator.schemas import Compiled, SchemaError, param_schema
from evaluator.text import allowed_text, article, host, may_hold_url_or_nul, strings_of, urls_in
from spinbot.graph import Node
from spinbot.manifest import ServiceSpec


def check_params(run: Run, specs: dict[str, ServiceSpec]) -> None:
    shapes: dict[tuple[Any, ...], _Shape] = {}
    anywhere = may_hold_url_or_nul([n.params for n in run.graph.nodes])  # one look at all, then per node
    for n in run.graph.nodes:
        strings = strings_of(n.params) if anywhere and may_hold_url_or_nul(n.params) else []
        if any("\x00" in t for t in strings):  # Postgres cannot store NUL; no service needs it
            run.add(
                "nul_character", "a param contains a NUL character", node=n.id, hint="remove \\u0000 from the params"
            )
        spec = specs.get(n.id)
        if spec is not None:
            _check_node_params(run, n, spec, shapes)
            if strings and spec.fetches:
                _check_urls(run, n, spec)
    if "\x00" in run.graph.context.goal:
        run.add("nul_character", "the goal contains a NUL character", hint="remove \\u0000 from the goal")


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a node's param names alone decide: unknown names, unwired inputs, the schema for the rest."""

    unknown: list[str]
    missing: list[str]
    literal: frozenset[str]
    compiled: Compiled


def _shape(spec: ServiceSpec, names: tuple[str, ...], wired: frozenset[str]) -> _Shape:
    schema = spec.params
    known = schema.get("properties", {})
    missing = [r for r in schema.get("required", ()) if r in spec.inputs and r not in names]
    literal = frozenset(k for k in names if k not in wired and (not known or k in known))
    unknown = [k for k in names if k not in known] if known else []
    return _Shape(unknown, missing, literal, param_schema(schema, wired.union(missing)))


def _check_node_params(run: Run, n: Node, spec: ServiceSpec, shapes: dict[tuple[Any, ...], _Shape]) -> None:
    names = tuple(n.params)
    wired = frozenset(name for name, _ in run.refs_of(n))
    key = (spec.id, names, wired)
    shape = shapes.get(key)
    if shape is None:
        shape = shapes[key] = _shape(spec, names, wired)
    for name in shape.unknown:
        run.add("unknown_param", f"{n.service} has no param {name!r}", node=n.id,
                hint=f"params of {n.service}: {', '.join(spec.params.get('properties', {}))}")
    for name in shape.missing:
        run.add(
            "missing_input",
            f"required input {name!r} ({spec.inputs[name]}) of {n.service} is not wired",
            node=n.id,
            hint=f'set {name} to {{"$node": <upstream id>, "output": <{article(spec.inputs[name])} output>}}',
        )
    literal = {k: v for k, v in n.params.items() if k in shape.literal}
    if shape.compiled.is_valid(literal):
        return
    for e in shape.compiled.errors(literal, limit=10):
        run.add("invalid_param", f"{n.service} param {e.where}: {e.message[:300]}", node=n.id,
                hint=_param_hint(spec.params, e))


def _param_hint(schema: dict[str, Any], error: SchemaError) -> str:
    name = error.path[0] if error.path else None
    prop = schema.get("properties", {}).get(name) if isinstance(name, str) else None
    if not prop:
        return "params must match the service's params schema"
    return allowed_text(str(name), prop)


def _check_urls(run: Run, n: Node, spec: ServiceSpec) -> None:
    """The SSRF guard: a URL in a param the service fetches (`fetches`) must name one of its allowed_hosts.
    A URL in any other param is text (words to speak, a topic) and is not checked."""
    allowed = {h.lower() for h in spec.allowed_hosts}
    for name in spec.fetches:
        for url in urls_in(strings_of(n.params.get(name))):
            if allowed and host(url) in allowed:
                continue
            run.add(
                "url_not_allowed",
                f"{n.service} fetches its param {name!r} and it names a URL ({url[:80]}) "
                + ("whose host is not allowed" if allowed else "while no host is allowed"),
                node=n.id,
                hint=f"allowed hosts: {', '.join(sorted(allowed))}" if allowed else "remove the URL from the params",
            )


_OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}


def check_constraints(run: Run, specs: dict[str, ServiceSpec]) -> None:
    """params[check.param] <op> context.constraints[name], where a service declares how to check `name`."""
    goal = run.graph.context.constraints
    if not goal:
        return
    for n in run.graph.nodes:
        spec = specs.get(n.id)
        if spec is None:
            continue
        for name, check in spec.constraints.items():
            bound = goal.get(name)
            value = n.params.get(check.param, spec.params.get("properties", {}).get(check.param, {}).get("default"))
            if _comparable(bound, value) and not _OPS[check.op](value, bound):
                run.add(
                    "constraint",
                    f"{check.param}={value} breaks the goal's {name}={bound} ({check.param} {check.op} {name})",
                    node=n.id,
                    hint=f"set {check.param} {check.op} {bound}",
                )


def _comparable(a: object, b: object) -> bool:
    def number(x: object) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    return (number(a) and number(b)) or (isinstance(a, str) and isinstance(b, str))
