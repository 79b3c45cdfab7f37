"""The evaluator: graph + merged manifest + limits -> verdict. Pure: no I/O, no clock, no globals but caches."""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
from pydantic import ValidationError

from evaluator.model import Estimate, Finding, Limits, Severity, Verdict
from spinbot.graph import AttachmentRef, Graph, Node, NodeRef, Plane, Ref, json_schema
from spinbot.manifest import MergedManifest, ServiceSpec

#: Anything with a scheme and `://` is a URL to us: http, https, file, gopher, ftp...
URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s'\"<>]*")
MIN_WEIGHT = 1e-4


# ---- compiled schemas ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaError:
    path: list[str | int]
    message: str

    @property
    def where(self) -> str:
        return "/".join(map(str, self.path)) or "(root)"


class _Compiled:
    """A compiled JSON Schema (jsonschema-rs: about 50x faster than jsonschema, the same verdicts)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self._rs = jsonschema_rs.validator_for(schema)

    def errors(self, instance: Any, limit: int = 20) -> list[SchemaError]:
        if self._rs.is_valid(instance):
            return []
        found = [SchemaError(list(e.instance_path), e.message) for e in self._rs.iter_errors(instance)]
        return sorted(found, key=lambda e: [str(p) for p in e.path])[:limit]


@cache
def _graph_schema() -> _Compiled:
    return _Compiled(json_schema())


_PARAM_SCHEMAS: dict[tuple[int, frozenset[str]], tuple[dict[str, Any], _Compiled]] = {}


def _param_schema(schema: dict[str, Any], skip: frozenset[str]) -> _Compiled:
    """The service's params schema minus `skip` from `required` (params wired by reference), compiled once."""
    key = (id(schema), skip)
    hit = _PARAM_SCHEMAS.get(key)
    if hit is not None and hit[0] is schema:
        return hit[1]
    if len(_PARAM_SCHEMAS) > 512:
        _PARAM_SCHEMAS.clear()
    trimmed = dict(schema)
    if skip and "required" in trimmed:
        trimmed["required"] = [r for r in trimmed["required"] if r not in skip]
    compiled = _Compiled(trimmed)
    _PARAM_SCHEMAS[key] = (schema, compiled)  # keeps `schema` alive so its id is not reused
    return compiled


# ---- helpers ---------------------------------------------------------------------------------


def compatible(produced: str, wanted: str) -> bool:
    return produced == wanted or "any" in (produced, wanted)


def refs_of(params: dict[str, Any]) -> list[tuple[str, Ref]]:
    """(param, reference) pairs of a validated node's params (spinbot.graph.iter_refs, without re-validating)."""
    out: list[tuple[str, Ref]] = []
    for name, value in params.items():
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, dict):
                if "$node" in item:
                    out.append((name, NodeRef(item["$node"], item["output"])))
                elif "$attachment" in item:
                    out.append((name, AttachmentRef(item["$attachment"])))
    return out


def strings_of(value: Any) -> list[str]:
    """Every string inside a param value (dict keys included), references skipped; iterative, one pass."""
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict) and "$node" not in v and "$attachment" not in v:
            out.extend(str(k) for k in v)
            stack.extend(v.values())
    return out


def urls_in(strings: list[str]) -> list[str]:
    return [m.group(0) for s in strings if "://" in s for m in URL_RE.finditer(s)]


def find_urls(params: dict[str, Any]) -> list[str]:
    """URL-like substrings anywhere in params (references skipped)."""
    return urls_in(strings_of(params))


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


# ---- the evaluation --------------------------------------------------------------------------


@dataclass
class _Run:
    graph: Graph
    manifest: MergedManifest
    limits: Limits
    findings: list[Finding] = field(default_factory=list)
    declared: MergedManifest | None = None
    _refs: dict[int, list[tuple[str, Ref]]] = field(default_factory=dict)
    succs: dict[str, list[str]] = field(default_factory=dict)

    def refs(self, node: Node) -> list[tuple[str, Ref]]:
        got = self._refs.get(id(node))
        if got is None:
            got = self._refs[id(node)] = refs_of(node.params)
        return got

    def add(self, code: str, message: str, *, node: str | None = None, hint: str = "", warn: bool = False) -> None:
        severity: Severity = "warning" if warn else "error"
        self.findings.append(Finding(code=code, severity=severity, node=node, message=message, hint=hint))

    @property
    def failed(self) -> bool:
        return any(f.severity == "error" for f in self.findings)


def evaluate(
    graph: Graph | dict[str, Any],
    manifest: MergedManifest,
    limits: Limits | None = None,
    *,
    declared: MergedManifest | None = None,
) -> Verdict:
    """Check a graph against what can run now; the verdict carries the normalised graph and estimates.

    `manifest` is the live one (what runs now). With `declared` (the committed manifests), a node
    whose service is declared for a plane that has no live executor at all is a `plane_offline`
    warning, not an error: the job waits in that plane's queue until an executor joins. A service
    that a live executor reports unavailable is still an error, and one nobody declares is unknown.
    """
    limits = limits or Limits()
    parsed, schema_findings = _parse(graph)
    if parsed is None:
        return Verdict(ok=False, findings=schema_findings)
    run = _Run(parsed, manifest, limits, schema_findings, declared=declared)
    ids = _check_ids(run)
    _check_fresh(run)
    preds = _predecessors(run, ids)
    run.succs = _successors(preds)
    specs = _check_services(run)
    _check_params(run, specs)
    _check_refs(run, specs, ids)
    order = _topological(run, preds)
    estimate = None
    if order is not None:
        estimate = _estimate(run, specs, preds, order)
        _normalise_weights(run.graph, estimate.by_node)
    _check_limits(run, preds, estimate)
    _check_constraints(run, specs)
    _check_unused(run, specs, preds)
    return Verdict(ok=not run.failed, findings=run.findings, estimate=estimate, graph=run.graph)


def _parse(graph: Graph | dict[str, Any]) -> tuple[Graph | None, list[Finding]]:
    """A private, validated copy of the graph; a dict is checked against the JSON Schema and the model."""
    if isinstance(graph, Graph):
        # Only nodes' plane and weight change: copying the nodes keeps the caller's graph untouched.
        return graph.model_copy(update={"nodes": [n.model_copy() for n in graph.nodes]}), []
    if not isinstance(graph, dict):
        return None, [Finding(code="schema", message="a graph is a JSON object", hint="send a langgraph.v1 object")]
    findings = [
        Finding(
            code="schema",
            node=_node_of(graph, e),
            message=f"{e.where}: {e.message[:300]}",
            hint="follow manifests/langgraph.v1.schema.json",
        )
        for e in _graph_schema().errors(graph)
    ]
    if findings:
        return None, findings
    try:
        return Graph.model_validate(graph), []
    except ValidationError as e:
        return None, [
            Finding(code="schema", message=f"{'/'.join(map(str, err['loc']))}: {err['msg']}") for err in e.errors()[:20]
        ]


def _node_of(graph: dict[str, Any], error: SchemaError) -> str | None:
    path = error.path
    if len(path) >= 2 and path[0] == "nodes" and isinstance(path[1], int):
        try:
            node_id = graph["nodes"][path[1]].get("id")
        except (IndexError, AttributeError, TypeError):
            return None
        return node_id if isinstance(node_id, str) else None
    return None


def _check_ids(run: _Run) -> set[str]:
    seen: set[str] = set()
    for n in run.graph.nodes:
        if n.id in seen:
            run.add("duplicate_id", f"node id {n.id!r} is used twice", node=n.id, hint="give every node its own id")
        seen.add(n.id)
    attachments = [a.id for a in run.graph.context.attachments]
    if len(set(attachments)) != len(attachments):
        run.add("duplicate_id", "two attachments share an id", hint="give every attachment its own id")
    return seen


def _check_fresh(run: _Run) -> None:
    """A new job's nodes carry no state: a preset output could smuggle someone else's artifact downstream."""
    for n in run.graph.nodes:
        if n.status != "pending" or n.output is not None or n.error is not None or n.attempts:
            run.add(
                "preset_state",
                f"node {n.id} arrives {n.status}" + (" with an output" if n.output is not None else ""),
                node=n.id,
                hint="submit every node pending, without output, error or attempts",
            )


def _predecessors(run: _Run, ids: set[str]) -> dict[str, set[str]]:
    """Node -> nodes it waits for (edges and references); edges naming unknown nodes are findings."""
    preds: dict[str, set[str]] = {i: set() for i in ids}
    for e in run.graph.edges:
        bad = [x for x in (e.source, e.target) if x not in ids]
        if bad:
            run.add(
                "unknown_node",
                f"edge {e.source} -> {e.target} names a node that does not exist: {', '.join(bad)}",
                hint="edges connect existing node ids only",
            )
            continue
        preds[e.target].add(e.source)
    for n in run.graph.nodes:
        for _, ref in run.refs(n):
            if isinstance(ref, NodeRef) and ref.node in ids:
                preds[n.id].add(ref.node)
    return preds


def _check_services(run: _Run) -> dict[str, ServiceSpec]:
    """Node id -> its service spec, for nodes whose service exists; fixes planes that do not match."""
    specs: dict[str, ServiceSpec] = {}
    for n in run.graph.nodes:
        spec = run.manifest.services.get(n.service)
        known = run.declared.services.get(n.service) if run.declared is not None else None
        either = spec or known
        if either is None:
            run.add(
                "unknown_service",
                f"service {n.service!r} does not exist",
                node=n.id,
                hint=f"use one of: {', '.join(_offered(run))}",
            )
            continue
        live = spec.planes if spec is not None else []
        waiting = [p for p in (known.planes if known is not None else []) if p not in live and not _online(run, p)]
        if n.plane not in live and n.plane not in waiting:
            if not live and not waiting:  # declared for planes that are online, yet no executor there offers it
                specs[n.id] = either
                run.add(
                    "service_unavailable",
                    f"service {n.service} cannot run now: no live executor offers it",
                    node=n.id,
                    hint=f"use one of: {', '.join(_offered(run))}",
                )
                continue
            fixed = (live or waiting)[0]
            run.add(
                "plane_fixed",
                f"{n.service} runs on {'/'.join([*live, *waiting])}, not {n.plane}; moved to {fixed}",
                node=n.id,
                hint=f"plane of {n.service} is {fixed}",
                warn=True,
            )
            n.plane = fixed
        if spec is not None and n.plane in live:
            specs[n.id] = spec
            if not spec.available:
                run.add(
                    "service_unavailable",
                    f"service {n.service} cannot run now: {spec.unavailable_reason or 'no executor offers it'}",
                    node=n.id,
                    hint=f"use one of: {', '.join(_offered(run))}",
                )
        else:  # declared for a plane with no executor online: the job waits for one
            specs[n.id] = either
            run.add(
                "plane_offline",
                f"no {n.plane} executor online; the job starts when one joins",
                node=n.id,
                hint=f"nothing to change: the job waits in the {n.plane} queue (start one: spinbot executor {n.plane})",
                warn=True,
            )
    return specs


def _online(run: _Run, plane: Plane) -> bool:
    """Whether any executor of `plane` is live now."""
    status = run.manifest.planes.get(plane)
    return status is not None and bool(status.executors)


def _offered(run: _Run) -> list[str]:
    """Services a graph may use now: the live manifest's available ones, plus declared ones that would wait."""
    names = {s.id for s in run.manifest.available()}
    if run.declared is not None:
        names |= {s.id for s in run.declared.available() if any(not _online(run, p) for p in s.planes)}
    return sorted(names)


def _check_params(run: _Run, specs: dict[str, ServiceSpec]) -> None:
    for n in run.graph.nodes:
        strings = strings_of(n.params)
        if any("\x00" in t for t in strings):  # Postgres cannot store NUL; no service needs it
            run.add(
                "nul_character", "a param contains a NUL character", node=n.id, hint="remove \\u0000 from the params"
            )
        spec = specs.get(n.id)
        if spec is not None:
            _check_node_params(run, n, spec)
            _check_urls(run, n, spec, strings)
    if "\x00" in run.graph.context.goal:
        run.add("nul_character", "the goal contains a NUL character", hint="remove \\u0000 from the goal")


def _check_node_params(run: _Run, n: Node, spec: ServiceSpec) -> None:
    schema = spec.params
    known = schema.get("properties", {})
    for name in n.params:
        if known and name not in known:
            run.add(
                "unknown_param",
                f"{n.service} has no param {name!r}",
                node=n.id,
                hint=f"params of {n.service}: {', '.join(known)}",
            )
    wired = {name for name, _ in run.refs(n)}
    missing = [r for r in schema.get("required", []) if r in spec.inputs and r not in n.params]
    for name in missing:
        run.add(
            "missing_input",
            f"required input {name!r} ({spec.inputs[name]}) of {n.service} is not wired",
            node=n.id,
            hint=f'set {name} to {{"$node": <upstream id>, "output": <{_a(spec.inputs[name])} output>}}',
        )
    literal = {k: v for k, v in n.params.items() if k not in wired and (not known or k in known)}
    for e in _param_schema(schema, frozenset(wired | set(missing))).errors(literal, limit=10):
        run.add(
            "invalid_param",
            f"{n.service} param {e.where}: {e.message[:300]}",
            node=n.id,
            hint=_param_hint(schema, e),
        )


def _param_hint(schema: dict[str, Any], error: SchemaError) -> str:
    name = error.path[0] if error.path else None
    prop = schema.get("properties", {}).get(name) if isinstance(name, str) else None
    if not prop:
        return "params must match the service's params schema"
    return allowed_text(str(name), prop)


_KINDS = {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
          "array": "a list", "object": "an object", "null": "null"}


def allowed_text(name: str, prop: dict[str, Any]) -> str:
    """What a param accepts, in words ("voice must be one of female, male (default female)"), never a raw schema."""
    if "enum" in prop:
        rule = "one of " + ", ".join(str(v) for v in prop["enum"])
    else:
        types = prop.get("type") or [o["type"] for o in prop.get("anyOf", []) if o.get("type") not in (None, "null")]
        types = [types] if isinstance(types, str) else list(types)
        rule = " or ".join(_KINDS.get(str(t), str(t)) for t in types)
        for o in [prop, *prop.get("anyOf", [])]:
            lo, hi = o.get("minimum"), o.get("maximum")
            if lo is not None and hi is not None:
                rule += f" from {lo:g} to {hi:g}"
            elif lo is not None:
                rule += f" of at least {lo:g}"
            elif hi is not None:
                rule += f" of at most {hi:g}"
            if o.get("maxLength") is not None:
                rule += f" of at most {o['maxLength']} characters"
    if not rule:
        return f"{name} must match the service's params schema"
    default = f" (default {prop['default']})" if prop.get("default") not in (None, "") else ""
    return f"{name} must be {rule.strip()}{default}"


def _a(word: str) -> str:
    """The word with its article: "an image", "a video"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def _check_urls(run: _Run, n: Node, spec: ServiceSpec, strings: list[str]) -> None:
    allowed = {h.lower() for h in spec.allowed_hosts}
    for url in urls_in(strings):
        if allowed and _host(url) in allowed:
            continue
        run.add(
            "url_not_allowed",
            f"{n.service} params name a URL ({url[:80]}); "
            + ("its host is not allowed" if allowed else "this service fetches nothing from URLs"),
            node=n.id,
            hint=f"allowed hosts: {', '.join(sorted(allowed))}" if allowed else "remove the URL from the params",
        )


def _check_refs(run: _Run, specs: dict[str, ServiceSpec], ids: set[str]) -> None:
    """Every reference names an upstream output (or an attachment) of a type the input accepts."""
    by_id = {n.id: n for n in run.graph.nodes}
    attachments = {a.id: a for a in run.graph.context.attachments}
    for n in run.graph.nodes:
        spec = specs.get(n.id)
        for name, ref in run.refs(n):
            wanted = spec.inputs.get(name) if spec else "any"
            if spec is not None and wanted is None:
                run.add(
                    "not_an_input",
                    f"param {name!r} of {n.service} takes a value, not a reference",
                    node=n.id,
                    hint=f"inputs of {n.service}: {', '.join(spec.inputs) or 'none'}; give {name} a plain value",
                )
                continue
            if isinstance(ref, AttachmentRef):
                att = attachments.get(ref.attachment)
                if att is None:
                    run.add(
                        "unknown_attachment",
                        f"param {name!r} names attachment {ref.attachment!r}, which the context lacks",
                        node=n.id,
                        hint=f"attachments: {', '.join(attachments) or 'none'}",
                    )
                elif not compatible(att.kind, wanted or "any"):
                    run.add(
                        "type_mismatch",
                        f"param {name!r} wants {wanted}, attachment {att.id} is {att.kind}",
                        node=n.id,
                        hint=f"wire {name} to a {wanted}",
                    )
                continue
            _check_node_ref(run, n, name, ref, wanted or "any", by_id, specs)


def _check_node_ref(
    run: _Run,
    n: Node,
    name: str,
    ref: NodeRef,
    wanted: str,
    by_id: dict[str, Node],
    specs: dict[str, ServiceSpec],
) -> None:
    source = by_id.get(ref.node)
    if source is None:
        run.add(
            "unknown_ref",
            f"param {name!r} references node {ref.node!r}, which does not exist",
            node=n.id,
            hint=f"nodes: {', '.join(by_id)}",
        )
        return
    source_spec = specs.get(source.id)
    if source_spec is None:
        return  # its unknown service is already a finding
    produced = source_spec.outputs.get(ref.output)
    if produced is None:
        run.add(
            "unknown_output",
            f"param {name!r} references output {ref.output!r} of {source.id}, but {source.service} has none",
            node=n.id,
            hint=f"outputs of {source.service}: {', '.join(source_spec.outputs) or 'none'}",
        )
    elif not compatible(produced, wanted):
        choices = [o for o, t in source_spec.outputs.items() if compatible(t, wanted)]
        run.add(
            "type_mismatch",
            f"param {name!r} wants {wanted}, {source.id}.{ref.output} is {produced}",
            node=n.id,
            hint=f"use {_a(wanted)} output" + (f" of {source.id}: {', '.join(choices)}" if choices else ""),
        )


def _topological(run: _Run, preds: dict[str, set[str]]) -> list[str] | None:
    """Kahn's order of the node ids, or None (and a finding) when there is a cycle."""
    indegree = {k: len(v) for k, v in preds.items()}
    succs = run.succs
    ready = [k for k, d in indegree.items() if d == 0]
    order: list[str] = []
    while ready:
        k = ready.pop()
        order.append(k)
        for s in succs[k]:
            indegree[s] -= 1
            if indegree[s] == 0:
                ready.append(s)
    if len(order) == len(preds):
        return order
    stuck = _on_cycles({k for k, d in indegree.items() if d > 0}, succs)
    run.add(
        "cycle",
        f"the graph has a cycle through {', '.join(stuck[:10])}",
        node=stuck[0],
        hint="a node may only depend on nodes before it; remove the edge or reference that points back",
    )
    return None


def _on_cycles(stuck: set[str], succs: dict[str, list[str]]) -> list[str]:
    """The stuck nodes minus those merely downstream of a cycle (peeled off from the sinks)."""
    left = set(stuck)
    changed = True
    while changed:
        changed = False
        for k in list(left):
            if not any(s in left for s in succs[k]):
                left.discard(k)
                changed = True
    return sorted(left or stuck)


def _successors(preds: dict[str, set[str]]) -> dict[str, list[str]]:
    succs: dict[str, list[str]] = {k: [] for k in preds}
    for k, ps in preds.items():
        for p in ps:
            succs[p].append(k)
    return succs


def _estimate(run: _Run, specs: dict[str, ServiceSpec], preds: dict[str, set[str]], order: list[str]) -> Estimate:
    """List-schedule the DAG: a node starts when its inputs are done and its plane is free."""
    nodes = {n.id: n for n in run.graph.nodes}
    durations = {k: (specs[k].estimate.duration_s if k in specs else 0.0) for k in order}
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
        plane = nodes[k].plane
        finish = max(ready, plane_free.get(plane, 0.0)) + durations[k]
        plane_free[plane] = finish
        end = max(end, finish)
        for s in succs[k]:
            ready_at[s] = max(ready_at[s], finish)
            indegree[s] -= 1
            if indegree[s] == 0:
                heapq.heappush(heap, (ready_at[s], position[s], s))
    gpu_s = sum(durations[k] for k in order if k in specs and specs[k].gpu)
    memory = max((specs[k].estimate.memory_mb for k in order if k in specs), default=0)
    return Estimate(duration_s=round(end, 3), gpu_s=round(gpu_s, 3), peak_memory_mb=memory, by_node=durations)


def _normalise_weights(graph: Graph, durations: dict[str, float]) -> None:
    """Weights sum to 1; missing ones come from the nodes' share of the estimated time."""
    total = sum(durations.values())
    raw = []
    for n in graph.nodes:
        if n.progress_weight is not None:
            raw.append(n.progress_weight)
        elif total > 0:
            raw.append(max(durations.get(n.id, 0.0) / total, MIN_WEIGHT))
        else:
            raw.append(1.0 / len(graph.nodes))
    s = sum(raw)
    for n, w in zip(graph.nodes, raw, strict=True):
        n.progress_weight = min(1.0, max(MIN_WEIGHT, round(w / s, 6)))


def _check_limits(run: _Run, preds: dict[str, set[str]], estimate: Estimate | None) -> None:
    lim = run.limits
    if len(run.graph.nodes) > lim.max_nodes:
        run.add(
            "too_many_nodes",
            f"{len(run.graph.nodes)} nodes; at most {lim.max_nodes} are allowed",
            hint=f"use at most {lim.max_nodes} nodes",
        )
    for k, succ in run.succs.items():
        if len(succ) > lim.max_fan_out:
            run.add(
                "fan_out",
                f"{len(succ)} nodes depend on {k}; at most {lim.max_fan_out} may",
                node=k,
                hint=f"let at most {lim.max_fan_out} nodes use one node's outputs",
            )
    if estimate is None:
        return
    if estimate.gpu_s > lim.max_gpu_s:
        run.add(
            "gpu_budget",
            f"the graph needs about {estimate.gpu_s:.0f} GPU-seconds; the limit is {lim.max_gpu_s:.0f}",
            hint="use fewer or cheaper GPU steps",
        )
    if lim.max_duration_s is not None and estimate.duration_s > lim.max_duration_s:
        run.add(
            "too_slow",
            f"the graph takes about {estimate.duration_s:.0f} s; the limit is {lim.max_duration_s:.0f} s",
            hint="use fewer or cheaper steps",
        )


_OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}


def _check_constraints(run: _Run, specs: dict[str, ServiceSpec]) -> None:
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
            if not _comparable(bound, value):
                continue
            if not _OPS[check.op](value, bound):
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


def _check_unused(run: _Run, specs: dict[str, ServiceSpec], preds: dict[str, set[str]]) -> None:
    """Warn about nodes whose outputs nobody reads although something runs after them."""
    used = {ref.node for n in run.graph.nodes for _, ref in run.refs(n) if isinstance(ref, NodeRef)}
    succs = run.succs
    for n in run.graph.nodes:
        spec = specs.get(n.id)
        if spec is None or not spec.outputs or n.id in used or not succs.get(n.id):
            continue
        run.add(
            "unused_output",
            f"nothing reads the outputs of {n.id} ({', '.join(spec.outputs)})",
            node=n.id,
            hint=f"reference an output of {n.id} downstream, or drop the node",
            warn=True,
        )
