"""The evaluator's vocabulary: limits in, findings and a verdict out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spinbot.graph import Graph

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one job may ask for; the API and the planner pass their own."""

    max_nodes: int = 64
    max_fan_out: int = 16
    max_gpu_s: float = 3600.0
    max_duration_s: float | None = None

    @classmethod
    def of(cls, settings: Any) -> Limits:
        """The limits every admitting path applies (API, chat, `spinbot submit`): from spinbot.settings.Settings."""
        return cls(max_nodes=settings.max_graph_nodes, max_fan_out=settings.max_fan_out)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Finding(_Model):
    code: str
    severity: Severity = "error"
    node: str | None = None
    message: str = Field(description="for people")
    hint: str = Field(default="", description="for the planner: what to change")


class Estimate(_Model):
    duration_s: float = Field(description="wall time along the critical path; each plane runs one node at a time")
    gpu_s: float = Field(description="GPU-seconds of all nodes on GPU services")
    peak_memory_mb: int = Field(description="the largest memory any single node holds")
    by_node: dict[str, float] = Field(default_factory=dict, description="estimated seconds per node")
    low_s: float | None = Field(default=None, description="the low end of the ~80 % range of duration_s")
    high_s: float | None = Field(default=None, description="the high end of the ~80 % range of duration_s")
    learned_runs: int = Field(default=0, description="finished runs the estimates learned from (each service once)")
    reused: list[str] = Field(default_factory=list, description="nodes the node cache will reuse (0 s each)")
    summary: str = Field(default="", description='for people: "about 40 s (30-60 s): the script is reused"')


class Verdict(_Model):
    ok: bool
    findings: list[Finding] = Field(default_factory=list)
    estimate: Estimate | None = None
    graph: Graph | None = Field(default=None, description="normalised: planes fixed, weights summing to 1")

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def to_json(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude={"graph"})
        out["graph"] = self.graph.to_json() if self.graph is not None else None
        return out

    def summary(self) -> str:
        """One line for logs and the planner's trace."""
        if self.ok:
            return f"approved with {len(self.warnings)} warning(s)"
        return "; ".join(f"{f.code}@{f.node or '-'}" for f in self.errors)
