"""The planner's boundary: what it is asked, and what it answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluator.model import Verdict
from spinbot.graph import Attachment, Graph


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str = Field(default="", max_length=20000)
    job_id: str | None = None


class Profile(BaseModel):
    """One of the caller's profiles, as the planner reads it (conversation.profiles.planner_profile): object keys
    only."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(max_length=64)
    name: str = Field(max_length=40)
    default: bool = False
    status: Literal["preparing", "ready", "failed"] = "ready"
    portrait: str | None = Field(default=None, max_length=512, description="object key of the portrait image")
    voice: str | None = Field(default=None, max_length=512, description="object key of the prepared voice")
    reference_text: str | None = Field(default=None, max_length=2000, description="what the prepared voice says")


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    goal: str = Field(max_length=20000)
    conversation: list[Message] = Field(default_factory=list, alias="history", max_length=200)
    attachments: list[Attachment] = Field(default_factory=list, max_length=32)
    previous_graph: dict[str, Any] | None = None
    constraints: dict[str, Any] = Field(default_factory=dict)
    profiles: list[Profile] = Field(default_factory=list, max_length=200, description="the caller's profiles")
    profile: str | None = Field(default=None, max_length=64, description="the id of the profile picked to use")


class PlanResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["reply", "plan"]
    reply: str | None = None
    graph: Graph | None = None
    verdict: Verdict | None = None
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    fallback: bool = False
    message: str = ""

    @property
    def approved(self) -> bool:
        return self.kind == "reply" or (self.verdict is not None and self.verdict.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reply": self.reply,
            "graph": self.graph.to_json() if self.graph is not None else None,
            "verdict": self.verdict.to_json() | {"graph": None} if self.verdict is not None else None,
            "attempts": self.attempts,
            "fallback": self.fallback,
            "message": self.message,
        }
