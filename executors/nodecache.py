"""The node cache around the node step (the store and the keys are spinbot.nodecache): a node whose
service, params and inputs match one its owner already ran is answered from that run."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from executors.interface import Handler, Middleware, NodeStep
from spinbot.manifest import ServiceSpec
from spinbot.nodecache import Entry, NodeCache, artifacts_in, cacheable, node_key, regenerated
from spinbot.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    outputs: dict[str, Any]
    reused: Entry | None = None  # set when the outputs came from the cache


class CacheStep:
    """The cache around one node's run: look up, else run and record.

        outcome = await cache_step(spec=service.spec(), params=resolved_params, owner=job_owner,
                                   metadata=graph.metadata, job_id=job_id, node_id=node.id, run=run_node)

    - `spec`: the node's ServiceSpec (from the registry's `Service.spec()`: id, version, cacheable);
    - `params`: the node's params with references resolved (JobRun.resolve_inputs), before validation;
    - `owner`: the job's owner (API key name), `metadata`: the graph's metadata (opt-outs);
    - `run`: the rest of the node step, returning the outputs.
    On a hit, `outcome.reused` names the job and node that made the outputs. A miss runs and records.
    Cache errors (Postgres down) never fail the node: it runs uncached. `node_cache()` adapts it to
    executors.middleware's protocol.
    """

    def __init__(self, cache: NodeCache, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cache, self.clock = cache, clock

    async def __call__(
        self, *, spec: ServiceSpec, params: Mapping[str, Any], owner: str, metadata: Mapping[str, Any],
        job_id: str, node_id: str, run: Callable[[], Awaitable[dict[str, Any]]], settings: Settings | None = None,
    ) -> Outcome:
        if not cacheable(spec, metadata, node_id):
            return Outcome(await run())
        key = node_key(spec, params, settings)
        again = regenerated(spec, metadata)
        try:
            hit = None if again else await self.cache.lookup(owner, key)
        except (asyncpg.PostgresError, OSError) as e:
            log.warning("node cache lookup failed (%s); job=%s node=%s runs", e, job_id, node_id)
            return Outcome(await run())
        if hit is not None:
            return Outcome(hit.outputs, hit)
        started = self.clock()
        outputs = await run()
        try:
            await self.cache.record(owner, key, spec, outputs, job_id=job_id, node_id=node_id,
                                    seconds=self.clock() - started, replace=again)
        except (asyncpg.PostgresError, OSError) as e:
            log.warning("node cache record failed (%s); job=%s node=%s", e, job_id, node_id)
        return Outcome(outputs)


def node_cache(cache_step: CacheStep) -> Middleware:
    """`cache_step` as a node-step middleware, placed right after `attempt` (executors.middleware). The
    resolved params are `step.resolved` (as `attempt` resolved them, before validation: they keep the
    artifacts' sha256 that validation may drop). On a hit it sets `step.reused = {"job", "node"}` (JobRun
    puts it on the node's completed event, the UI shows "reused"), logs which node made the outputs and announces their
    artifacts again (not re-recorded: they stay the making job's, the same owner's)."""

    specs: dict[str, ServiceSpec] = {}  # Service.spec() builds a JSON Schema: once per service

    async def middleware(step: NodeStep, call_next: Handler) -> dict[str, Any]:
        run, parsed = step.run, step.run.parsed
        assert parsed is not None  # a node step runs on a parsed job
        spec = specs.get(step.service.id)
        if spec is None:
            spec = specs[step.service.id] = step.service.spec()
        outcome = await cache_step(
            spec=spec, params=step.resolved or {}, owner=parsed.owner,
            metadata=run.graph.metadata, job_id=run.job_id, node_id=step.node.id, run=lambda: call_next(step),
            settings=run.ex.settings,
        )
        if outcome.reused is not None:
            made = {"job": outcome.reused.job_id, "node": outcome.reused.node_id}
            step.reused = made
            await run.emit("log", {"node": step.node.id, "reused": made,
                                   "message": f"reused the outputs of {made['node']} (job {made['job']}): "
                                              "same service, params and inputs"})
            for art in artifacts_in(outcome.outputs):
                name = str(art.get("name") or art["key"].rsplit("/", 1)[-1])
                await run.emit("artifact", {"node": step.node.id, "name": name, **art})
        return outcome.outputs

    return middleware
