"""Data wiring: every reference names an upstream output (or an attachment) of a type its input accepts."""

from __future__ import annotations

from collections.abc import Mapping

from evaluator.run import Run
from evaluator.text import article, compatible
from spinbot.graph import AttachmentRef, Node, NodeRef
from spinbot.manifest import ServiceSpec


def check_refs(run: Run, specs: dict[str, ServiceSpec]) -> None:
    """Every reference names an upstream output (or an attachment) of a type the input accepts."""
    by_id = {n.id: n for n in run.graph.nodes}
    attachments = {a.id: a.kind for a in run.graph.context.attachments}
    produces = {k: s.outputs for k, s in specs.items()}
    for n in run.graph.nodes:
        spec = specs.get(n.id)
        for name, ref in run.refs_of(n):
            wanted = spec.inputs.get(name) if spec else "any"
            if type(ref) is NodeRef and wanted is not None and ref.node in by_id:
                produced = produces.get(ref.node, {}).get(ref.output)
                if produced is not None and (produced == wanted or "any" in (produced, wanted)):
                    continue  # the common case, decided without a call
            if wanted is None:
                assert spec is not None
                run.add(
                    "not_an_input",
                    f"param {name!r} of {n.service} takes a value, not a reference",
                    node=n.id,
                    hint=f"inputs of {n.service}: {', '.join(spec.inputs) or 'none'}; give {name} a plain value",
                )
            elif isinstance(ref, AttachmentRef):
                _check_attachment_ref(run, n, name, ref, wanted, attachments)
            else:
                _check_node_ref(run, n, name, ref, wanted, by_id, specs)


def _mismatch(run: Run, n: Node, name: str, wanted: str, what: str, hint: str) -> None:
    run.add("type_mismatch", f"param {name!r} wants {wanted}, {what}", node=n.id, hint=hint)


def _check_attachment_ref(
    run: Run, n: Node, name: str, ref: AttachmentRef, wanted: str, attachments: Mapping[str, str]
) -> None:
    kind = attachments.get(ref.attachment)
    if kind is None:
        run.add(
            "unknown_attachment",
            f"param {name!r} names attachment {ref.attachment!r}, which the context lacks",
            node=n.id,
            hint=f"attachments: {', '.join(attachments) or 'none'}",
        )
    elif not compatible(kind, wanted):
        _mismatch(run, n, name, wanted, f"attachment {ref.attachment} is {kind}", f"wire {name} to a {wanted}")


def _check_node_ref(
    run: Run, n: Node, name: str, ref: NodeRef, wanted: str, by_id: dict[str, Node], specs: dict[str, ServiceSpec]
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
        hint = f"use {article(wanted)} output" + (f" of {source.id}: {', '.join(choices)}" if choices else "")
        _mismatch(run, n, name, wanted, f"{source.id}.{ref.output} is {produced}", hint)


def check_unused(run: Run, specs: dict[str, ServiceSpec]) -> None:
    """Warn about nodes whose outputs nobody reads although something runs after them."""
    used = {ref.node for refs in run.refs.values() for _, ref in refs if isinstance(ref, NodeRef)}
    for n in run.graph.nodes:
        spec = specs.get(n.id)
        if spec is None or not spec.outputs or n.id in used or not run.succs.get(n.id):
            continue
        run.add(
            "unused_output",
            f"nothing reads the outputs of {n.id} ({', '.join(spec.outputs)})",
            node=n.id,
            hint=f"reference an output of {n.id} downstream, or drop the node",
            warn=True,
        )
