"""Capabilities manifests: what each plane's executors can run, and their merge."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spinbot.graph import DataType, Plane

MANIFEST_SCHEMA: Literal["spinbot.capabilities.v1"] = "spinbot.capabilities.v1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Estimate(_Model):
    duration_s: float = Field(ge=0, description="typical wall time for typical params")
    memory_mb: int = Field(ge=0, description="peak memory the task holds (GPU memory on the gpu plane)")


class CostFeature(_Model):
    """A quantity a service's run time grows with, e.g. characters of text, seconds of media, pixels.

    Its value is the product of the values at `of`: dotted paths into the node (`params.text`,
    `outputs.frames`), each measured as a number (its value), a string (its length in characters), an
    artifact (its size in bytes) or a list (the sum of its items). `typical` is the value the declared
    `estimate.duration_s` assumes; spinbot.estimates scales and learns from it.
    """

    name: str = Field(description="what it counts: chars, seconds, pixels, frames, bytes")
    of: list[str] = Field(min_length=1, description="params.X or outputs.X paths whose values multiply")
    typical: float = Field(gt=0)


class OutputSize(_Model):
    """What an output will measure, known before the run from the node's params: `scale` x the product of the
    values at `of` / the product of the values at `per` (measured as CostFeature's are; a missing param is its
    schema default). A path into a data reference reads the upstream node's own prediction: `params.text` its
    output of that name, `params.audio.duration_s` its output `duration_s`. E.g. speech seconds =
    9.0 x characters of text / words per minute."""

    of: list[str] = Field(min_length=1, description="params.X or params.X.OUTPUT paths whose values multiply")
    per: list[str] = Field(default_factory=list, description="paths whose values divide")
    scale: float = Field(gt=0)


class RetryPolicy(_Model):
    max_attempts: int = Field(default=3, ge=1)
    backoff_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)

    def delay(self, attempt: int) -> float:
        """Exponential backoff before attempt number `attempt + 1` (attempt counts from 1)."""
        return min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempt - 1))


class ConstraintCheck(_Model):
    """How a goal constraint bounds this service: context.constraints[name] <op> params[param]."""

    param: str
    op: Literal["<=", ">=", "=="] = "<="


class Offer(_Model):
    """What a service can do for a goal, in the user's words: the planner's vocabulary is the union of these.

    `deliverable` is the intent's name for it (the model's enum, the rules' target, the builder's final step);
    `does` is shown to the model and to users ("read text aloud"); `cues` are regular expressions (any
    language) that name it in a goal; `says` are the verbs that name it too and are followed by the words to
    speak ("say hello"); `output` is the service output that is the deliverable; `base` is the input it
    transforms (an attached video, or another deliverable's output), empty when it makes something new.
    """

    deliverable: str = Field(pattern=r"^[a-z][a-z_]{1,30}$")
    does: str = Field(min_length=3, max_length=120)
    cues: list[str] = Field(default_factory=list, description="regular expressions naming it in a goal")
    says: list[str] = Field(default_factory=list, description="regular expressions of the verbs the words to speak "
                            "follow (\"say: ...\", \"read aloud ...\"); they name the deliverable too")
    output: str
    base: str | None = Field(default=None, description="the input it transforms, e.g. the video to upscale")
    needs: list[str] = Field(default_factory=list, description="optional inputs this deliverable must fill")
    default: bool = Field(default=False, description="what a goal that names no deliverable gets")


class Attachable(_Model):
    """An input an attachment may fill: what it is in the user's words, and a cue the goal must match when an
    attachment of that type could mean something else (a voice sample "in this voice" vs a soundtrack)."""

    role: str = Field(min_length=3, max_length=80)
    cue: str | None = None


class ServiceSpec(_Model):
    id: str
    planes: list[Plane]
    description: str
    gpu: bool = False
    params: dict[str, Any] = Field(description="JSON Schema of the params object")
    inputs: dict[str, DataType] = Field(default_factory=dict, description="params that take data references")
    outputs: dict[str, DataType] = Field(default_factory=dict)
    estimate: Estimate
    features: list[CostFeature] = Field(default_factory=list, description="what the run time grows with")
    predicts: dict[str, OutputSize] = Field(default_factory=dict, description="outputs whose size is known "
                                            "before the run (a plan's estimate follows them downstream)")
    version: str = Field(default="1", description="bumped when the same params no longer give the same outputs")
    cacheable: bool = Field(default=True, description="false for side effects: never reused from the node cache")
    engine: list[str] = Field(default_factory=list, description="settings that choose the engine behind the "
                              "service (e.g. tts_url): their values are part of the node cache key")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_s: float = 600.0
    hidden: bool = Field(default=False, description="diagnostic: not offered to the planner")
    allowed_hosts: list[str] = Field(default_factory=list, description="hosts the `fetches` params may name")
    fetches: list[str] = Field(default_factory=list, description="params whose URLs the service fetches: only "
                               "these are checked against allowed_hosts (a URL elsewhere is just text)")
    deterministic: bool = Field(default=True, description="false when the same params give different outputs "
                                "(a model sampling): a regenerate runs it again instead of reusing its outputs")
    constraints: dict[str, ConstraintCheck] = Field(default_factory=dict)
    offers: list[Offer] = Field(default_factory=list, description="what it can do for a goal (the planner's words)")
    attachable: dict[str, Attachable] = Field(default_factory=dict, description="inputs an attachment may fill")
    measures: list[str] = Field(default_factory=list, description="what the executor measures on the outputs "
                                "after each run (recorded as output.checks)")
    available: bool = True
    unavailable_reason: str | None = None


class PlaneManifest(_Model):
    schema_: Literal["spinbot.capabilities.v1"] = Field(default=MANIFEST_SCHEMA, alias="schema")
    plane: Plane
    executor: str | None = None
    device: dict[str, Any] | None = None
    heartbeat: float | None = None
    services: list[ServiceSpec]


class PlaneStatus(_Model):
    executors: list[str] = Field(default_factory=list)
    devices: list[dict[str, Any]] = Field(default_factory=list)


class MergedManifest(_Model):
    schema_: Literal["spinbot.capabilities.v1"] = Field(default=MANIFEST_SCHEMA, alias="schema")
    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    planes: dict[Plane, PlaneStatus] = Field(default_factory=dict)

    def available(self, *, include_hidden: bool = False) -> list[ServiceSpec]:
        return [s for s in self.services.values() if s.available and (include_hidden or not s.hidden)]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def merge(manifests: Iterable[PlaneManifest]) -> MergedManifest:
    """One view of several executors' manifests: a service is available if any live executor offers it."""
    merged = MergedManifest()
    for m in manifests:
        status = merged.planes.setdefault(m.plane, PlaneStatus())
        if m.executor:
            status.executors.append(m.executor)
        if m.device:
            status.devices.append(m.device)
        for spec in m.services:
            have = merged.services.get(spec.id)
            if have is None:
                merged.services[spec.id] = spec.model_copy(update={"planes": [m.plane]}, deep=True)
                continue
            if m.plane not in have.planes:
                have.planes.append(m.plane)
            if spec.available and not have.available:
                have.available, have.unavailable_reason = True, None
    return merged
