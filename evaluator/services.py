"""Does each node's service exist, on which plane, and can it run now."""

from __future__ import annotations

from evaluator.run import Run
from spinbot.graph import Node, Plane
from spinbot.manifest import ServiceSpec


def _unavailable(run: Run, n: Node, why: str) -> None:
    run.add("service_unavailable", f"service {n.service} cannot run now: {why}", node=n.id,
            hint=f"use one of: {', '.join(run.offered())}")


def check_services(run: Run) -> dict[str, ServiceSpec]:
    """Node id -> its service spec, for nodes whose service exists; fixes planes that do not match."""
    specs: dict[str, ServiceSpec] = {}
    for n in run.graph.nodes:
        spec = run.manifest.services.get(n.service)
        known = run.declared.services.get(n.service) if run.declared is not None else None
        either = spec or known
        if either is None:
            run.add("unknown_service", f"service {n.service!r} does not exist", node=n.id,
                    hint=f"use one of: {', '.join(run.offered())}")
            continue
        specs[n.id] = either
        live = spec.planes if spec is not None else []
        if n.plane in live and spec is not None:  # the common case: offered where the graph puts it
            specs[n.id] = spec
            if not spec.available:
                _unavailable(run, n, spec.unavailable_reason or "no executor offers it")
            continue
        waiting = [p for p in (known.planes if known is not None else []) if p not in live and not run.online(p)]
        if n.plane not in waiting:
            if not live and not waiting:  # declared for planes that are online, yet no executor there offers it
                _unavailable(run, n, "no live executor offers it")
                continue
            _fix_plane(run, n, live, waiting)
        _check_placed(run, n, spec, live)
    return specs


def _fix_plane(run: Run, n: Node, live: list[Plane], waiting: list[Plane]) -> None:
    fixed = (live or waiting)[0]
    run.add(
        "plane_fixed",
        f"{n.service} runs on {'/'.join([*live, *waiting])}, not {n.plane}; moved to {fixed}",
        node=n.id,
        hint=f"plane of {n.service} is {fixed}",
        warn=True,
    )
    n.plane = fixed


def _check_placed(run: Run, n: Node, spec: ServiceSpec | None, live: list[Plane]) -> None:
    """After a plane fix: unavailable where it is live, else waiting for an executor of its plane."""
    if spec is not None and n.plane in live:
        if not spec.available:
            _unavailable(run, n, spec.unavailable_reason or "no executor offers it")
        return
    run.add(
        "plane_offline",
        f"no {n.plane} executor online; the job starts when one joins",
        node=n.id,
        hint=f"nothing to change: the job waits in the {n.plane} queue (start one: spinbot executor {n.plane})",
        warn=True,
    )
