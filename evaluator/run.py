"""One evaluation's working state: the parsed graph, what it is checked against, and the findings so far."""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator.model import Finding, Limits, Severity
from evaluator.text import refs_of
from spinbot.graph import Graph, Node, Plane, Ref
from spinbot.manifest import MergedManifest


@dataclass
class Run:
    graph: Graph
    manifest: MergedManifest
    limits: Limits
    findings: list[Finding] = field(default_factory=list)
    declared: MergedManifest | None = None
    refs: dict[int, list[tuple[str, Ref]]] = field(default_factory=dict)
    succs: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every node's references, found once: the checks that follow all read them.
        self.refs = {id(n): refs_of(n.params) for n in self.graph.nodes}

    def refs_of(self, node: Node) -> list[tuple[str, Ref]]:
        return self.refs[id(node)]

    def add(self, code: str, message: str, *, node: str | None = None, hint: str = "", warn: bool = False) -> None:
        severity: Severity = "warning" if warn else "error"
        self.findings.append(Finding(code=code, severity=severity, node=node, message=message, hint=hint))

    def online(self, plane: Plane) -> bool:
        """Whether any executor of `plane` is live now."""
        status = self.manifest.planes.get(plane)
        return status is not None and bool(status.executors)

    def offered(self) -> list[str]:
        """Services a graph may use now: the live manifest's available ones, plus declared ones that would wait."""
        names = {s.id for s in self.manifest.available()}
        if self.declared is not None:
            names |= {s.id for s in self.declared.available() if any(not self.online(p) for p in s.planes)}
        return sorted(names)

    @property
    def failed(self) -> bool:
        return any(f.severity == "error" for f in self.findings)
