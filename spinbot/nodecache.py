"""The content-addressed node cache: a completed node's outputs, reused by a node with the same key.

key = sha256(service id, service version, canonical params with every resolved input replaced by its
digest: an artifact by its sha256, any other value by itself). Entries live in Postgres (`node_cache`,
migration 004), scoped per owner (API key): an owner reuses only outputs its own jobs made, so a
reused artifact's owner is the new job's owner. A hit whose artifacts are gone or changed is dropped
and the node runs; two jobs filling one key at once both run and the first record wins
(INSERT ... ON CONFLICT DO NOTHING), so an entry is never half-written or overwritten.

Services with side effects declare `cacheable=False`; a job opts out with graph metadata
`{"cache": false}`, single nodes with `{"cache": {"skip": ["node-id", ...]}}`.

Services whose outputs differ run to run for the same params (a model sampling) declare
`deterministic=False`: their outputs are reused as any others (a follow-up keeps the script it changes
nothing in), except in a job with graph metadata `{"cache": {"regenerate": true}}` (a chat's Regenerate):
there they run again, and the new outputs replace the entry, so later follow-ups reuse what was shown last.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from spinbot.artifacts import ArtifactNotFound, ArtifactStore
from spinbot.graph import AttachmentRef, Graph, NodeRef, iter_refs, resolve_params
from spinbot.manifest import ServiceSpec

log = logging.getLogger(__name__)


# ---- keys (pure) -----------------------------------------------------------------------------


def is_artifact(value: Any) -> bool:
    """An artifact descriptor as node outputs hold it: {"key", "sha256", ...} (spinbot.artifacts)."""
    return isinstance(value, dict) and isinstance(value.get("key"), str) and isinstance(value.get("sha256"), str)


def digested(value: Any) -> Any:
    """`value` with every artifact replaced by {"$sha256": digest}: where it is stored does not matter."""
    if is_artifact(value):
        return {"$sha256": value["sha256"]}
    if isinstance(value, list):
        return [digested(v) for v in value]
    if isinstance(value, dict):
        return {k: digested(v) for k, v in value.items()}
    return value


def node_key(spec: ServiceSpec, resolved_params: Mapping[str, Any], settings: Any = None) -> str:
    """The cache key (64 hex digits) of running `spec` on these params, references already resolved.
    With `settings`, the values of the settings the service names as its engine (`spec.engine`, e.g. tts_url)
    are part of the key: a voice approximated by eSpeak is not reused once an F5-TTS server is configured."""
    doc: dict[str, Any] = {"service": spec.id, "version": spec.version, "params": digested(dict(resolved_params))}
    if spec.engine:
        doc["engine"] = {name: str(getattr(settings, name, None)) for name in spec.engine}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


def artifacts_in(value: Any) -> Iterator[dict[str, Any]]:
    """Every artifact descriptor inside an output value."""
    if is_artifact(value):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from artifacts_in(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from artifacts_in(v)


def opted_out(metadata: Mapping[str, Any], node_id: str) -> bool:
    """Whether graph metadata turns the cache off for the job (`cache: false`) or for this node (`skip`)."""
    setting = metadata.get("cache", True)
    if setting is False:
        return True
    return isinstance(setting, dict) and (setting.get("enabled") is False or node_id in (setting.get("skip") or ()))


def cacheable(spec: ServiceSpec, metadata: Mapping[str, Any], node_id: str) -> bool:
    return spec.cacheable and not opted_out(metadata, node_id)


def regenerated(spec: ServiceSpec, metadata: Mapping[str, Any]) -> bool:
    """Whether this job asks a non-deterministic service again (metadata `cache.regenerate`) instead of reusing."""
    setting = metadata.get("cache")
    return not spec.deterministic and isinstance(setting, Mapping) and setting.get("regenerate") is True


def reusable_here(spec: ServiceSpec, metadata: Mapping[str, Any], node_id: str) -> bool:
    """Whether a node of this job may be answered from the cache (looked up), not only recorded."""
    return cacheable(spec, metadata, node_id) and not regenerated(spec, metadata)


def plan_reuse(
    graph: Graph, specs: Mapping[str, ServiceSpec], known: Mapping[str, dict[str, Any]], settings: Any = None
) -> tuple[dict[str, str], set[str]]:
    """Which nodes of a planned graph the cache would reuse: (node id -> key, keys to look up next).

    A node's key is known when every reference it makes is to an attachment or to a reused node (whose
    outputs `known` holds); a node is reused when its key is in `known`. Keys computed but not in
    `known` are returned so a caller can fetch them and call again (NodeCache.reusable does).
    """
    attachments = {a.id: a.model_dump(mode="json", by_alias=True, exclude_none=True) for a in graph.context.attachments}
    outputs: dict[str, dict[str, Any]] = {}
    reused: dict[str, str] = {}
    wanted: set[str] = set()
    for n in _in_order(graph):
        spec = specs.get(n.service)
        if spec is None or not reusable_here(spec, graph.metadata, n.id):
            continue
        refs = [r for _, r in iter_refs(n.params)]
        if any(isinstance(r, NodeRef) and r.node not in outputs for r in refs):
            continue
        if any(isinstance(r, AttachmentRef) and r.attachment not in attachments for r in refs):
            continue
        key = node_key(spec, resolve_params(n.params, lambda r: _value(r, outputs, attachments)), settings)
        if key in known:
            reused[n.id], outputs[n.id] = key, known[key]
        else:
            wanted.add(key)
    return reused, wanted


def _value(ref: Any, outputs: Mapping[str, dict[str, Any]], attachments: Mapping[str, Any]) -> Any:
    if isinstance(ref, NodeRef):
        return outputs[ref.node].get(ref.output)
    return attachments[ref.attachment]


def _in_order(graph: Graph) -> list[Any]:
    """The nodes, each after the nodes it waits for (a cycle's nodes are left out)."""
    preds = graph.predecessors()
    by_id = {n.id: n for n in graph.nodes}
    done: set[str] = set()
    order: list[Any] = []
    progress = True
    while progress:
        progress = False
        for n in graph.nodes:
            if n.id not in done and all(p in done or p not in by_id for p in preds[n.id]):
                done.add(n.id)
                order.append(n)
                progress = True
    return order


# ---- the store -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached node: its outputs, and the job and node that made them."""

    key: str
    outputs: dict[str, Any]
    job_id: str
    node_id: str


class NodeCache:
    """lookup/record against Postgres; `artifacts` checks that a hit's artifacts still exist unchanged."""

    def __init__(self, pool: asyncpg.Pool, artifacts: ArtifactStore | None = None) -> None:
        self.pool, self.artifacts = pool, artifacts

    async def lookup(self, owner: str, key: str) -> Entry | None:
        """The owner's entry for `key` whose artifacts are all present; a stale entry is deleted (a miss)."""
        row = await self.pool.fetchrow(
            "UPDATE node_cache SET hits = hits + 1, last_hit_at = now() WHERE owner=$1 AND key=$2"
            " RETURNING outputs, artifacts, job_id, node_id",
            owner, key,
        )  # fmt: skip
        if row is None:
            return None
        if not await self._present(row["artifacts"]):
            await self.forget(owner, key, made_by=(row["job_id"], row["node_id"]))
            log.info("node cache entry %s of %s dropped: an artifact is gone", key[:12], owner)
            return None
        return Entry(key, row["outputs"], row["job_id"], row["node_id"])

    async def _present(self, artifacts: list[dict[str, Any]]) -> bool:
        if self.artifacts is None:
            return True
        for a in artifacts:
            try:
                info = await self.artifacts.stat(a["key"])
            except ArtifactNotFound:
                return False
            if info.sha256 != a["sha256"]:
                return False
        return True

    async def record(
        self, owner: str, key: str, spec: ServiceSpec, outputs: dict[str, Any], *, job_id: str, node_id: str,
        seconds: float | None = None, replace: bool = False,
    ) -> bool:
        """Keep a completed node's outputs under `key`; False when the key was already filled (first wins).
        `replace`: a regenerated node's outputs take the entry's place (one statement: never half-written)."""
        arts = [{"key": a["key"], "sha256": a["sha256"]} for a in artifacts_in(outputs)]
        conflict = ("DO UPDATE SET outputs=EXCLUDED.outputs, artifacts=EXCLUDED.artifacts, job_id=EXCLUDED.job_id,"
                    " node_id=EXCLUDED.node_id, seconds=EXCLUDED.seconds, created_at=now(), hits=0"
                    if replace else "DO NOTHING")
        status = await self.pool.execute(
            "INSERT INTO node_cache (owner, key, service, version, outputs, artifacts, job_id, node_id, seconds)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (owner, key) {conflict}",
            owner, key, spec.id, spec.version, outputs, arts, job_id, node_id, seconds,
        )  # fmt: skip
        return bool(status.endswith(" 1"))

    async def forget(self, owner: str, key: str, *, made_by: tuple[str, str] | None = None) -> None:
        """Drop the entry; with `made_by` (job, node) only if that node still made it (not a newer record)."""
        job, node = made_by or (None, None)
        await self.pool.execute(
            "DELETE FROM node_cache WHERE owner=$1 AND key=$2 AND ($3::text IS NULL OR (job_id=$3 AND node_id=$4))",
            owner, key, job, node,
        )  # fmt: skip

    async def known(self, owner: str, keys: Collection[str]) -> dict[str, dict[str, Any]]:
        """key -> outputs for those of `keys` the owner has (for plan_reuse; artifacts not checked)."""
        rows = await self.pool.fetch(
            "SELECT key, outputs FROM node_cache WHERE owner=$1 AND key = ANY($2::text[])", owner, list(keys)
        )
        return {r["key"]: r["outputs"] for r in rows}

    async def reusable(self, owner: str, graph: Graph, specs: Mapping[str, ServiceSpec],
                       settings: Any = None) -> dict[str, str]:
        """plan_reuse against this owner's entries: node id -> key of the nodes a run would reuse.
        One query per layer of reused nodes; artifacts are checked at run time, not here. `settings`: the
        engines' settings (the executors' are assumed to be the same as the caller's)."""
        known: dict[str, dict[str, Any]] = {}
        while True:
            reused, wanted = plan_reuse(graph, specs, known, settings)
            fetched = await self.known(owner, wanted - known.keys()) if wanted - known.keys() else {}
            if not fetched:
                return reused
            known.update(fetched)


# ---- the node step -----------------------------------------------------------------------------


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
    Cache errors (Postgres down) never fail the node: it runs uncached. `middleware()` adapts it to
    executors.middleware's protocol.
    """

    def __init__(self, cache: NodeCache, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cache, self.clock = cache, clock

    async def __call__(
        self, *, spec: ServiceSpec, params: Mapping[str, Any], owner: str, metadata: Mapping[str, Any],
        job_id: str, node_id: str, run: Callable[[], Awaitable[dict[str, Any]]], settings: Any = None,
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


def middleware(cache_step: CacheStep) -> Callable[[Any, Callable[[Any], Awaitable[dict[str, Any]]]],
                                                  Awaitable[dict[str, Any]]]:
    """`cache_step` as an executors.middleware middleware `mw(step, call_next)` (duck-typed: spinbot does
    not import executors), placed right after `attempt`. It reads `step.run`, `step.node`, `step.service`
    and `step.resolved` (the params as `attempt` resolved them, before validation: they keep the artifacts'
    sha256 that validation may drop). On a hit it sets `step.reused = {"job", "node"}` (JobRun puts it on the
    node's completed event, the UI shows "reused"), logs which node made the outputs and announces their
    artifacts again (not re-recorded: they stay the making job's, the same owner's)."""

    specs: dict[str, ServiceSpec] = {}  # Service.spec() builds a JSON Schema: once per service

    async def node_cache(step: Any, call_next: Callable[[Any], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        run = step.run
        spec = specs.get(step.service.id)
        if spec is None:
            spec = specs[step.service.id] = step.service.spec()
        outcome = await cache_step(
            spec=spec, params=step.resolved, owner=run.parsed.owner,
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

    return node_cache
