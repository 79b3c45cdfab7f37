"""The task registry: one declaration next to each handler; manifests are generated from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from spinbot.errors import UnknownService
from spinbot.graph import DataType, Plane
from spinbot.manifest import (
    Attachable,
    ConstraintCheck,
    CostFeature,
    Estimate,
    Offer,
    OutputSize,
    PlaneManifest,
    RetryPolicy,
    ServiceSpec,
)

if TYPE_CHECKING:
    from spinbot.checks import Check
    from spinbot.task import TaskContext

Handler = Callable[["TaskContext", Any], Awaitable[dict[str, Any]]]
#: checks(ctx, params, outputs) -> what was measured on the outputs (spinbot.checks); may raise: the executor
#: records a raising checker as "not checked".
Checker = Callable[["TaskContext", Any, dict[str, Any]], Awaitable[list["Check"]]]
#: refine(params, checks) -> (param changes, why) for one more run when a cheaper fix exists, else None.
Refiner = Callable[[Any, list["Check"]], tuple[dict[str, Any], str] | None]
#: Returns None when the service can run here, else why not (no engine, no binary...).
Probe = Callable[[Any], str | None]


@dataclass(frozen=True)
class Service:
    id: str
    planes: tuple[Plane, ...]
    description: str
    params: type[BaseModel]
    handler: Handler
    inputs: dict[str, DataType] = field(default_factory=dict)
    outputs: dict[str, DataType] = field(default_factory=dict)
    gpu: bool = False
    duration_s: float = 1.0
    memory_mb: int = 0
    features: tuple[CostFeature, ...] = ()
    predicts: dict[str, OutputSize] = field(default_factory=dict)  # outputs' sizes known before the run
    version: str = "1"
    cacheable: bool = True
    engine: tuple[str, ...] = ()  # Settings fields whose values choose the engine (part of the node cache key)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 600.0
    hidden: bool = False
    allowed_hosts: tuple[str, ...] = ()
    fetches: tuple[str, ...] = ()  # params whose URLs the service fetches (checked against allowed_hosts)
    deterministic: bool = True  # False: a regenerate (Open WebUI's) runs it again rather than reusing its outputs
    constraints: dict[str, ConstraintCheck] = field(default_factory=dict)
    probe: Probe | None = None
    offers: tuple[Offer, ...] = ()  # what it can do for a goal, in the user's words (the planner's vocabulary)
    attachable: dict[str, Attachable] = field(default_factory=dict)  # inputs an attachment may fill
    checks: Checker | None = None  # run on the outputs after each run (executors/checking.py)
    measures: tuple[str, ...] = ()  # the names of the checks `checks` makes, published in the manifest
    refine: Refiner | None = None  # one more run with changed params when a check misses and this can fix it

    def spec(self, settings: Any = None) -> ServiceSpec:
        reason = self.probe(settings) if (self.probe and settings is not None) else None
        return ServiceSpec(
            id=self.id,
            planes=list(self.planes),
            description=self.description,
            gpu=self.gpu,
            params=self.params.model_json_schema(),
            inputs=self.inputs,
            outputs=self.outputs,
            estimate=Estimate(duration_s=self.duration_s, memory_mb=self.memory_mb),
            features=list(self.features),
            predicts=self.predicts,
            version=self.version,
            cacheable=self.cacheable,
            engine=list(self.engine),
            retry=self.retry,
            timeout_s=self.timeout_s,
            hidden=self.hidden,
            allowed_hosts=list(self.allowed_hosts),
            fetches=list(self.fetches),
            deterministic=self.deterministic,
            constraints=self.constraints,
            offers=list(self.offers),
            attachable=self.attachable,
            measures=list(self.measures),
            available=reason is None,
            unavailable_reason=reason,
        )


def service(
    id: str,
    *,
    planes: Iterable[Plane],
    description: str,
    params: type[BaseModel],
    **options: Any,
) -> Callable[[Handler], Service]:
    """Declare a service: `@service("tts.synthesize", planes=["gpu"], ...)` above its handler."""

    def wrap(handler: Handler) -> Service:
        return Service(id=id, planes=tuple(planes), description=description, params=params, handler=handler, **options)

    return wrap


class Registry:
    """The services one plane can run, looked up by id."""

    def __init__(self, plane: Plane, services: Iterable[Service]) -> None:
        self.plane = plane
        self.services: dict[str, Service] = {}
        for s in services:
            if plane in s.planes:
                if s.id in self.services:
                    raise ValueError(f"service {s.id} declared twice")
                self.services[s.id] = s

    @classmethod
    def from_modules(cls, plane: Plane, modules: Iterable[ModuleType]) -> Registry:
        found = [v for m in modules for v in vars(m).values() if isinstance(v, Service)]
        return cls(plane, found)

    def get(self, service_id: str) -> Service:
        try:
            return self.services[service_id]
        except KeyError:
            raise UnknownService(
                f"service {service_id!r} is not registered on the {self.plane} plane",
                hint=f"use one of: {', '.join(sorted(self.services))}",
            ) from None

    def manifest(self, settings: Any = None, **live: Any) -> PlaneManifest:
        """The plane's manifest; with settings, each service's probe decides its availability."""
        specs = [self.services[k].spec(settings) for k in sorted(self.services)]
        return PlaneManifest(plane=self.plane, services=specs, **live)
