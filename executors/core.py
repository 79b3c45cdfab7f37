"""One executor core for both planes; the planes differ only in their registries.

The loop is small named steps: claim (XREADGROUP / XAUTOCLAIM) -> resolve inputs -> run -> record
(each node completion is written to Redis at once, fenced by the claim) -> hand off (XADD to the
other plane) -> ack (XACK+XDEL), the last two in one Lua script. Retries, timeouts, admission and
metrics sit around the steps, not inside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import socket
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from pydantic import ValidationError

from spinbot import capabilities
from spinbot import constants as C
from spinbot import metrics as M
from spinbot.artifacts import ArtifactInfo, ArtifactStore, OwnedStore
from spinbot.errors import Cancelled, LostClaim, NodeTimeout, PermanentError, SpinbotError, classify
from spinbot.graph import TERMINAL_NODE, AttachmentRef, Graph, Node, NodeError, NodeRef, Ref, resolve_params
from spinbot.jobs import (
    NODE_FIELD,
    TERMINAL_JOB,
    JobQueue,
    Lease,
    RecordWriter,
    Snapshot,
    _decode_hash,
    as_str,
    doc_with_states,
    dumps,
    node_state,
    ready_nodes,
)
from spinbot.registry import Registry, Service
from spinbot.settings import Settings
from spinbot.store import Store
from spinbot.task import TaskContext

log = logging.getLogger(__name__)

REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, OSError)
#: Inside a task only the queue client's connection errors are an outage; anything else is the node's failure.
QUEUE_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
CANCEL_GRACE_S = 1.0  # a cancelled node gets this long to stop on its own before it is interrupted
POSTGRES_FINISH_TRIES = 3
MAX_DELTA_BYTES = 64 * 1024  # node states carried in a hand-off entry


class Admission:
    """Admits GPU nodes by slots and by declared memory against the device's memory."""

    def __init__(self, slots: int, memory_mb: int | None) -> None:
        self.slots = max(1, slots)
        self.memory_mb = memory_mb
        self.used_slots = 0
        self.used_mb = 0
        self.waiting = 0  # nodes waiting for admission: the device is saturated
        self._cond = asyncio.Condition()

    def impossible(self, mb: int) -> str | None:
        if self.memory_mb is not None and mb > self.memory_mb:
            return f"needs {mb} MB of device memory, this executor has {self.memory_mb} MB"
        return None

    def _fits(self, mb: int) -> bool:
        if self.used_slots >= self.slots:
            return False
        return self.memory_mb is None or self.used_slots == 0 or self.used_mb + mb <= self.memory_mb

    @contextlib.asynccontextmanager
    async def admit(self, mb: int) -> AsyncIterator[None]:
        async with self._cond:
            self.waiting += 1
            try:
                await self._cond.wait_for(lambda: self._fits(mb))
            finally:
                self.waiting -= 1
            self.used_slots += 1
            self.used_mb += mb
        try:
            yield
        finally:
            async with self._cond:
                self.used_slots -= 1
                self.used_mb -= mb
                self._cond.notify_all()


@dataclass
class Parsed:
    """A job's graph as validated once: the stored document, the model, its dependencies."""

    raw: str
    doc: dict[str, Any]
    graph: Graph
    preds: dict[str, set[str]]
    base: dict[str, dict[str, Any]]
    context: dict[str, Any]
    owner: str = ""  # the API key's owner id: which objects its tasks may read
    version: int = -1  # the job version whose node states the model holds

    @property
    def by_id(self) -> dict[str, Node]:
        if self._by_id is None:
            self._by_id = {n.id: n for n in self.graph.nodes}
        return self._by_id

    _by_id: dict[str, Node] | None = None


class GraphCache:
    """Validated graphs by job, so a claim re-applies node states instead of re-validating the graph.

    The stored `graph` field changes only at submit and finish; between, node states travel in
    the record's `n:<node>` fields, which every claim applies afresh.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, Parsed] = OrderedDict()

    def load(self, job_id: str, fields: dict[str, str]) -> Parsed:
        raw = fields["graph"]
        p = self._items.get(job_id)
        if p is None or p.raw != raw:
            doc = _loads(raw)
            graph = Graph.model_validate(doc)
            p = Parsed(raw, doc, graph, graph.predecessors(), {n.id: node_state(n) for n in graph.nodes},
                       graph.context.model_dump(mode="json", by_alias=True), fields.get("owner", ""))
            self._items[job_id] = p
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(job_id)
        states = {k[len(NODE_FIELD):]: _loads(v) for k, v in fields.items() if k.startswith(NODE_FIELD)}
        for n in p.graph.nodes:
            st = states.get(n.id) or p.base[n.id]
            # assign only what differs: pydantic attribute assignment is not free
            if n.status != st["status"]:
                n.status = st["status"]
            if n.attempts != (st.get("attempts") or 0):
                n.attempts = st.get("attempts") or 0
            if n.output != st.get("output"):
                n.output = st.get("output")
            err = st.get("error")
            if (n.error is None) != (err is None) or (err and n.error and n.error.message != err.get("message")):
                n.error = NodeError.model_validate(err) if err else None
        p.version = int(fields.get("version") or 0)
        return p

    def advance(self, job_id: str, version: int, delta: str | None) -> Parsed | None:
        """The cached graph moved to `version` by the hand-off's delta, if it holds version - 1; else None."""
        p = self._items.get(job_id)
        if p is None or delta is None or p.version != version - 1:
            return None
        for node_id, st in _loads(delta).items():
            n = p.by_id[node_id]
            n.status, n.attempts, n.output = st["status"], st.get("attempts") or 0, st.get("output")
            n.error = NodeError.model_validate(st["error"]) if st.get("error") else None
        p.version = version
        self._items.move_to_end(job_id)
        return p

    def drop(self, job_id: str) -> None:
        self._items.pop(job_id, None)


class Workdirs:
    """Private, empty work directories for nodes; emptied ones are reused (no filesystem churn per node)."""

    def __init__(self, root: Path, keep: int = 16) -> None:
        self.root = root
        self.keep = keep
        self._free: list[Path] = []

    def acquire(self) -> Path:
        if self._free:
            return self._free.pop()
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="node-", dir=self.root))

    async def release(self, path: Path) -> None:
        """An empty directory goes back to the pool; anything a task left behind is removed with it."""
        with os.scandir(path) as it:
            empty = next(it, None) is None
        if empty and len(self._free) < self.keep:
            self._free.append(path)
        else:
            await asyncio.to_thread(shutil.rmtree, path, True)

    def clear(self) -> None:
        for path in self._free:
            shutil.rmtree(path, ignore_errors=True)
        self._free.clear()


class Executor:
    """Claims jobs from one plane's stream and runs that plane's ready nodes."""

    def __init__(
        self,
        settings: Settings,
        plane: str,
        registry: Registry,
        redis: aioredis.Redis,
        store: Store | None,
        artifacts: ArtifactStore,
        *,
        executor_id: str | None = None,
        device: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.plane = plane
        self.registry = registry
        self.redis = redis
        self.store = store
        self.artifacts = artifacts
        self.queue = JobQueue(redis, store)
        self.id = executor_id or f"{plane}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stream = C.plane_stream(plane)
        self.device = device
        self.node_slots = asyncio.Semaphore(max(1, settings.concurrency))
        memory = settings.gpu_memory_mb or (int(device["total_mb"]) if device and "total_mb" in device else None)
        self.gpu = Admission(settings.gpu_slots, memory if plane == "gpu" else None)
        self.max_jobs = max(2, settings.concurrency * 2)
        self.runs: dict[str, JobRun] = {}
        self.stopping = asyncio.Event()
        self.started = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self.workdirs = Workdirs(settings.data_dir / "work" / self.id)
        self.graphs = GraphCache()
        self._manifest: Any = None
        self.writer = RecordWriter(self.queue) if store is not None else None

    # ---- lifecycle

    async def run(self) -> None:
        """Serve until stop(): claim loop, claim heartbeats, cancel listener, live manifest."""
        await self._start_up()
        if self.stopping.is_set():
            return
        self._manifest = await asyncio.to_thread(self._build_manifest)  # probes may touch disk or binaries
        with contextlib.suppress(*REDIS_DOWN):
            await capabilities.publish(self.redis, self._manifest,
                                       ttl_s=capabilities.ttl_for(self.settings.heartbeat_s))
        helpers = [
            asyncio.create_task(self._reprobe_loop(), name="reprobe"),
            asyncio.create_task(self._heartbeat_loop(), name="claims-heartbeat"),
            *([asyncio.create_task(self.writer.run(), name="postgres-writer")] if self.writer else []),
            asyncio.create_task(self._cancel_listener(), name="cancel-listener"),
            asyncio.create_task(self._reconcile_loop(), name="reconcile"),
            asyncio.create_task(
                capabilities.heartbeat(self.redis, self.manifest, interval_s=self.settings.heartbeat_s,
                                       stop=self.stopping),
                name="manifest",
            ),
        ]
        claim = asyncio.create_task(self._claim_loop(), name="claim")
        log.info("executor %s serving plane=%s services=%s", self.id, self.plane, ",".join(self.registry.services))
        self.started.set()
        try:
            await self.stopping.wait()
        finally:
            claim.cancel()
            await asyncio.gather(claim, return_exceptions=True)
            await self._drain()
            for t in helpers:
                t.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            with contextlib.suppress(*REDIS_DOWN):
                await capabilities.withdraw(self.redis, self.plane, self.id)
            self.workdirs.clear()
            with contextlib.suppress(OSError):
                self.workdirs.root.rmdir()
            log.info("executor %s stopped", self.id)

    def stop(self) -> None:
        self.stopping.set()

    def manifest(self) -> Any:
        """The live manifest as last probed (the heartbeat republishes it)."""
        return self._manifest if self._manifest is not None else self._build_manifest()

    def _build_manifest(self) -> Any:
        return self.registry.manifest(self.settings, executor=self.id, device=self.device)

    async def _reprobe_loop(self, every_s: float = 15.0) -> None:
        """Services' availability can change (an engine starts, a binary appears): re-probe now and then."""
        while True:
            await asyncio.sleep(every_s)
            try:
                self._manifest = await asyncio.to_thread(self._build_manifest)
            except Exception:
                log.exception("re-probing the services failed; keeping the last manifest")

    async def _drain(self, grace_s: float = 10.0) -> None:
        """Let running jobs finish briefly; the rest stay pending in Redis and are picked up again."""
        tasks = [r.task for r in self.runs.values() if r.task is not None]
        if tasks:
            log.info("waiting up to %.0f s for %d running job(s)", grace_s, len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            unfinished = [eid for eid, r in self.runs.items() if r.task in pending and not r.lease.released]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self._release(unfinished)
        if self._background:
            await asyncio.wait(self._background, timeout=grace_s)
        if self.writer is not None:
            await self.writer.flushed(grace_s)

    async def _start_up(self) -> None:
        """Redis reachable, groups created, lost jobs re-issued; retried while Redis is down."""
        delay = 0.5
        while not self.stopping.is_set():
            await self._until_redis_ready()
            try:
                await self.queue.ensure_groups()
                await self._recover()
                return
            except REDIS_DOWN as e:
                log.error("Redis at %s went away during start-up (%s); retrying in %.1f s",
                          self.settings.redis_url, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _release(self, entries: list[str]) -> None:
        """Hand unfinished entries back at shutdown: marked idle, the next XAUTOCLAIM elsewhere takes them."""
        if not entries:
            return
        try:
            await self.redis.xclaim(self.stream, C.GROUP, self.id, 0, list[Any](entries),
                                    idle=self.settings.claim_idle_ms + 1, justid=True)
            log.info("released %d unfinished job entr%s for other executors", len(entries),
                     "y" if len(entries) == 1 else "ies")
        except REDIS_DOWN as e:
            log.warning("could not release unfinished entries (%s); they are reclaimed after %d ms",
                        e, self.settings.claim_idle_ms)

    async def _until_redis_ready(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                await self.redis.ping()
                return
            except REDIS_DOWN as e:
                log.error(
                    "Redis at %s is unreachable (%s): start Redis or fix SPINBOT_REDIS_URL; retrying in %.1f s",
                    self.settings.redis_url, e, delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _recover(self) -> None:
        try:
            reissued = await self.queue.recover()
        except REDIS_DOWN as e:
            log.error("could not check for lost jobs (Redis unreachable: %s)", e)
            return
        except Exception:
            log.exception("could not check for lost jobs")
            return
        for job_id in reissued:
            log.warning("re-issued job=%s: its stream entry was lost", job_id)

    async def _reconcile_loop(self) -> None:
        """Every ~reconcile_s: recreate missing consumer groups, then, if no other executor swept in the
        last half interval (a short Redis lock), re-issue every unfinished job whose stream entry vanished.

        The lock only saves work: a sweep is idempotent. With the lock held for half an interval and each
        executor trying once per interval, some executor sweeps at least once every reconcile_s.
        """
        every = self.settings.reconcile_s
        while True:
            await asyncio.sleep(every * random.uniform(0.8, 1.0))
            try:
                await self.reconcile_once()
            except REDIS_DOWN as e:
                log.warning("reconciliation skipped (Redis unreachable: %s)", e)
            except Exception:
                log.exception("reconciliation failed; trying again in %.0f s", every)

    async def reconcile_once(self) -> list[str]:
        """One reconciliation step: groups recreated; the sweep only if this executor gets the lock."""
        await self.queue.ensure_groups()
        ttl_ms = max(1, int(self.settings.reconcile_s * 500))
        if not await self.redis.set(C.RECONCILE_LOCK, self.id, nx=True, px=ttl_ms):
            return []
        reissued = await self.queue.reconcile()
        for job_id in reissued:
            log.warning("re-issued job=%s: its stream entry vanished (found by reconciliation)", job_id)
        return reissued

    # ---- claim

    async def _claim_loop(self) -> None:
        own_pending = True  # at start and after a Redis outage, first take back our own pending entries
        last_autoclaim = 0.0
        delay = 0.5
        while not self.stopping.is_set():
            try:
                free = self._free_claims()
                if free <= 0:
                    self._slot_free.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slot_free.wait(), timeout=1.0)
                    continue
                if own_pending:
                    await self._claim_own_pending()
                    own_pending = False
                if time.monotonic() - last_autoclaim > self.settings.claim_idle_ms / 2000:
                    last_autoclaim = time.monotonic()
                    await self._autoclaim(free)
                res: Any = await self.redis.xreadgroup(
                    C.GROUP, self.id, {self.stream: ">"}, count=free, block=1000
                )
                for _, entries in res or []:
                    for eid, fields in entries:
                        self._start(eid, fields, deliveries=1)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as e:
                log.error("Redis at %s is unreachable (%s): is it running? retrying in %.1f s",
                          self.settings.redis_url, e, delay)
                own_pending = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            except redis.exceptions.ResponseError as e:
                if "NOGROUP" in str(e):  # Redis came back empty: recreate streams and groups
                    log.warning("consumer group missing (Redis restarted without its data?); recreating")
                    await self.queue.ensure_groups()
                    await self._recover()
                else:
                    log.exception("unexpected Redis error in the claim loop")
                    await asyncio.sleep(delay)

    def _free_claims(self) -> int:
        """How many entries to claim now. The GPU plane holds at most `gpu_slots` jobs at a time
        (their ready nodes still run concurrently): more would hoard jobs another GPU executor could
        start at once."""
        held = sum(1 for r in self.runs.values() if not r.lease.released)
        if self.plane == "gpu":
            return min(self.max_jobs - len(self.runs), self.gpu.slots - held)
        return self.max_jobs - len(self.runs)

    async def _claim_own_pending(self) -> None:
        res: Any = await self.redis.xreadgroup(C.GROUP, self.id, {self.stream: "0"}, count=self.max_jobs)
        for _, entries in res or []:
            for eid, fields in entries:
                if fields:
                    self._start(eid, fields, deliveries=await self._deliveries(eid))

    async def _autoclaim(self, count: int) -> None:
        """Take over entries idle longer than claim_idle_ms: their executor died."""
        _, entries, *_ = await self.redis.xautoclaim(
            self.stream, C.GROUP, self.id, min_idle_time=self.settings.claim_idle_ms, start_id="0-0", count=count
        )
        for eid, fields in entries:
            if fields is None or eid in self.runs:
                continue
            deliveries = await self._deliveries(eid)
            log.warning("reclaimed entry=%s (idle > %d ms, delivery %d)", eid, self.settings.claim_idle_ms, deliveries)
            self._start(eid, fields, deliveries=deliveries)

    async def _deliveries(self, eid: str) -> int:
        p = await self.redis.xpending_range(self.stream, C.GROUP, min=eid, max=eid, count=1)
        return int(p[0]["times_delivered"]) if p else 1

    def _start(self, eid: Any, fields: Any, *, deliveries: int) -> None:
        eid = eid.decode() if isinstance(eid, bytes) else str(eid)
        current = self.runs.get(eid)
        if current is not None and current.lost is None:
            return  # ours already (a lost run is ending: the entry came back to us, serve it afresh)
        run = JobRun(self, eid, _decode_hash(fields or {}), deliveries)
        self.runs[eid] = run
        run.task = asyncio.create_task(self._serve(run), name=f"entry-{eid}")

    async def _serve(self, run: JobRun) -> None:
        try:
            await run.serve()
        except LostClaim as e:
            await self._lost_claim(run, str(e))
        except REDIS_DOWN as e:
            log.error("job=%s plane=%s interrupted, Redis unreachable (%s); its entry stays pending",
                      run.job_id, self.plane, e)
        except asyncio.CancelledError:
            if run.lost is not None and not self.stopping.is_set():
                await self._lost_claim(run, f"entry {run.entry} is {run.lost}")
            else:
                log.info("job=%s plane=%s interrupted by shutdown; its entry stays pending", run.job_id, self.plane)
        except Exception:
            # A bug: the entry stays pending and is redelivered; max_deliveries stops a loop.
            log.exception("job=%s plane=%s crashed the executor step", run.job_id, self.plane)
        finally:
            if not run.lease.released:  # its in-memory graph may be ahead of the record: forget it
                self.graphs.drop(run.job_id)
            if self.runs.get(run.entry) is run:
                self.runs.pop(run.entry)
            self._slot_free.set()

    async def _lost_claim(self, run: JobRun, why: str) -> None:
        """This run no longer owns its job. If the entry was taken over, the new owner runs the job; if
        it vanished (trimmed, deleted, its group destroyed), the job is re-issued now rather than left
        `running` with nobody on it."""
        log.warning("job=%s plane=%s lost its claim: %s", run.job_id, self.plane, why)
        try:
            if run.lost == "nogroup":
                await self.queue.ensure_groups()  # recreated from id 0: the entry is delivered again
            await run.drop_if_stale()
            if run.job_id and await self.queue.reconcile_job(run.job_id):
                log.warning("re-issued job=%s plane=%s: its entry %s vanished while it ran", run.job_id,
                            self.plane, run.entry)
        except (*REDIS_DOWN, redis.exceptions.ResponseError) as e:
            log.warning("job=%s plane=%s: could not check its entry after the lost claim (%s); "
                        "reconciliation re-issues it within %.0f s if it is gone", run.job_id, self.plane, e,
                        self.settings.reconcile_s)

    # ---- claim heartbeat and cancellation

    async def _heartbeat_loop(self) -> None:
        # a few heartbeats per claim_idle_ms, so a late one does not let a healthy claim be stolen
        interval = min(self.settings.heartbeat_s, self.settings.claim_idle_ms / 3000)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._heartbeat_once()
            except REDIS_DOWN as e:
                log.warning("claim heartbeat failed (Redis unreachable: %s)", e)
            except redis.exceptions.ResponseError as e:  # e.g. the stream's key replaced by another type
                log.error("claim heartbeat failed: %s", e)

    async def _heartbeat_once(self) -> None:
        runs = {eid: r for eid, r in self.runs.items() if not r.lease.released and r.lost is None}
        if not runs:
            return
        lost: list[Any] = list(await self.queue._heartbeat(keys=[self.stream], args=[C.GROUP, self.id, *runs]))
        for eid, reason in zip(lost[::2], lost[1::2], strict=True):
            run = runs.get(as_str(eid))
            # releasing: our own hand-off/finish may just have removed the entry
            if run is None or run.task is None or run.lease.released or run.lease.releasing:
                continue
            run.lost = as_str(reason)
            if run.lost == "stolen":
                log.warning("job=%s plane=%s entry=%s was taken over by another executor; stopping here",
                            run.job_id, self.plane, run.entry)
            else:
                log.warning("job=%s plane=%s entry=%s is %s (trimmed, deleted or its group lost it); "
                            "stopping here and re-issuing the job", run.job_id, self.plane, run.entry, run.lost)
            run.task.cancel()
        # Pub/sub is not durable: the cancel flag on the record is the backstop.
        pipe = self.redis.pipeline(transaction=False)
        live = [r for r in runs.values() if r.job_id]
        for r in live:
            pipe.hget(C.job_key(r.job_id), "cancel")
        for r, flag in zip(live, await pipe.execute(), strict=True):
            if flag in ("1", b"1"):
                r.request_cancel()

    async def _cancel_listener(self) -> None:
        delay = 0.5
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(C.CANCEL_CHANNEL)
                delay = 0.5
                async for msg in pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    job_id = msg["data"].decode() if isinstance(msg["data"], bytes) else msg["data"]
                    for r in list(self.runs.values()):
                        if r.job_id == job_id:
                            r.request_cancel()
            except REDIS_DOWN as e:
                log.warning("cancel listener lost Redis (%s); resubscribing in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    # ---- background Postgres writes

    def background(self, coro: Any, what: str) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception as e:
                log.error("Postgres write failed (%s): %s; it is retried at the job's next transition", what, e)

        t = asyncio.create_task(guarded())
        self._background.add(t)
        t.add_done_callback(self._background.discard)


class JobRun:
    """One claimed stream entry: the job's graph, run as far as this plane can take it."""

    def __init__(self, ex: Executor, entry: str, fields: dict[str, str], deliveries: int) -> None:
        self.ex = ex
        self.entry = entry
        self.fields = fields
        self.deliveries = deliveries
        self.job_id = fields.get("job", "")
        self.lease = Lease(ex.queue, self.job_id, ex.stream, entry, ex.id, deliveries)
        self.cancel = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.graph: Graph | None = None
        self.parsed: Parsed | None = None
        self.preds: dict[str, set[str]] = {}
        self.node_progress: dict[str, float] = {}
        self.unrecorded: list[Node] = []  # ended, not yet written (see run_ready)
        self.changed: dict[str, dict[str, Any]] = {}  # node states this run wrote: the hand-off's delta
        self.version = 0
        self.lost: str | None = None  # why the claim heartbeat found the entry no longer ours
        # Job progress never goes back: a node re-run (after a crash, a re-issue, a retry) starts at 0.
        self.progress_floor = _float(fields.get("progress"))

    @property
    def plane(self) -> str:
        return self.ex.plane

    def request_cancel(self) -> None:
        if not self.cancel.is_set():
            log.info("job=%s plane=%s cancel requested", self.job_id, self.plane)
            self.cancel.set()

    # ---- claim: load and check the job

    async def serve(self) -> None:
        if not self.job_id:
            await self._dead_letter_unparseable("the entry has no job id")
            return
        if not await self.load_fast():
            if not await self.load():
                return
        log.info("claimed job=%s plane=%s entry=%s delivery=%d", self.job_id, self.plane, self.entry, self.deliveries)
        if self.deliveries > 1:
            await self.emit("log", {"node": "", "message": f"resumed by {self.ex.id} on the {self.plane} plane "
                                    f"(delivery {self.deliveries}): its previous executor stopped"})
        elif reissued := self.fields.get("reissued"):
            await self.emit("log", {"node": "", "message": f"resumed by {self.ex.id} on the {self.plane} plane: "
                                    f"re-issued because its {reissued}"})
        elif interrupted := [n.id for n in self.graph.nodes if n.status == "running"] if self.graph else []:
            await self.emit("log", {"node": "", "message": f"resumed by {self.ex.id} on the {self.plane} plane: "
                                    f"interrupted node(s) {', '.join(interrupted)} run again"})
        await self.run_ready()
        await asyncio.shield(self.hand_off_or_finish())

    async def load_fast(self) -> bool:
        """A hand-off back to an executor that knows the job: apply the entry's delta, read nothing.

        Ownership, a stale entry and the cancel flag are then learnt at the first (fenced) commit.
        """
        if self.deliveries > 1 or "delta" not in self.fields:
            return False
        try:
            version = int(self.fields.get("version", ""))
            parsed = self.ex.graphs.advance(self.job_id, version, self.fields["delta"])
        except (ValueError, KeyError, TypeError):
            return False
        if parsed is None:
            return False
        self.parsed, self.graph, self.preds, self.version = parsed, parsed.graph, parsed.preds, version
        return True

    async def load(self) -> bool:
        """Read the job record, check the entry still carries the job, build the graph; False if not to run."""
        raw = _decode_hash(await self.ex.redis.hgetall(C.job_key(self.job_id)))
        if not raw:
            await self._dead_letter_unparseable(f"job {self.job_id} does not exist")
            return False
        if raw.get("entry") != self.entry or raw.get("stream") != self.ex.stream or raw.get("status") in TERMINAL_JOB:
            await self._drop_stale()
            return False
        self.version = int(raw.get("version") or 0)
        self.progress_floor = max(self.progress_floor, _float(raw.get("progress")))
        if self.deliveries > self.ex.settings.max_deliveries:
            await self._poison(
                f"the job's entry was delivered {self.deliveries} times (limit {self.ex.settings.max_deliveries}) "
                "without finishing: a task keeps killing its executor"
            )
            return False
        try:
            self.parsed = self.ex.graphs.load(self.job_id, raw)
        except (ValueError, KeyError) as e:
            await self._poison(f"the job's graph cannot be read: {e}")
            return False
        self.graph, self.preds = self.parsed.graph, self.parsed.preds
        if raw.get("cancel") == "1":
            self.cancel.set()
        if raw.get("status") == "queued":
            await self.lease.commit(
                {"status": "running", "plane": self.plane},
                [("job", {"status": "running", "progress": self.job_progress(), "plane": self.plane})],
            )
        return True

    async def drop_if_stale(self) -> None:
        """After a lost claim: if the entry no longer carries its job, ack it away instead of leaving it pending."""
        entry, stream, status = await self.ex.redis.hmget(C.job_key(self.job_id), ["entry", "stream", "status"])
        if entry != self.entry or stream != self.ex.stream or status in TERMINAL_JOB:
            pending = await self.ex.redis.xpending_range(self.ex.stream, C.GROUP, self.entry, self.entry, 1)
            if pending and as_str(pending[0]["consumer"]) == self.ex.id:
                await self._drop_stale()


    async def _dead_letter_unparseable(self, reason: str) -> None:
        log.error("dead-lettered entry=%s plane=%s: %s", self.entry, self.plane, reason)
        self.lease.released = True
        pipe = self.ex.redis.pipeline(transaction=True)
        pipe.xadd(C.DEAD_LETTER_STREAM, {"stream": self.ex.stream, "entry": self.entry, "reason": reason,
                                         "fields": dumps(self.fields)})
        pipe.xack(self.ex.stream, C.GROUP, self.entry)
        pipe.xdel(self.ex.stream, self.entry)
        await pipe.execute()

    async def _drop_stale(self) -> None:
        """An entry that no longer carries its job (a duplicate or a finished job): ack and forget."""
        log.info("dropped stale entry=%s job=%s plane=%s", self.entry, self.job_id, self.plane)
        self.lease.released = True
        pipe = self.ex.redis.pipeline(transaction=True)
        pipe.xack(self.ex.stream, C.GROUP, self.entry)
        pipe.xdel(self.ex.stream, self.entry)
        await pipe.execute()

    async def _poison(self, reason: str) -> None:
        """Fail the job with a clear error and move its entry to the dead-letter stream."""
        log.error("poison entry=%s job=%s plane=%s: %s", self.entry, self.job_id, self.plane, reason)
        error = {"code": "poison", "message": reason,
                 "hint": "see the dead-letter stream and the executor logs; fix the task or the graph and resubmit"}
        self.version += 1
        await self.lease.commit(
            {"status": "failed", "error": dumps(error), "version": self.version, "plane": ""},
            [("job", {"status": "failed", "progress": 1.0, "error": error})],
            mode="dead", target=C.DEAD_LETTER_STREAM,
            target_fields={"stream": self.ex.stream, "entry": self.entry, "job": self.job_id, "reason": reason,
                           "deliveries": self.deliveries},
        )
        M.JOBS.labels("failed").inc()
        await self._sync_store_final()

    # ---- the ready part of the graph

    def job_progress(self) -> float:
        """Weighted progress of the job, never below what was reported before (a re-run node restarts at 0)."""
        assert self.graph is not None
        total = done = 0.0
        for n in self.graph.nodes:
            w = n.progress_weight or 1.0
            total += w
            if n.status in TERMINAL_NODE:
                done += w
            elif n.status == "running":
                done += w * self.node_progress.get(n.id, 0.0)
        self.progress_floor = max(self.progress_floor, round(done / total, 4) if total else 1.0)
        return self.progress_floor

    def ready_here(self, running: set[str]) -> list[Node]:
        assert self.graph is not None
        return [n for n in ready_nodes(self.graph, self.preds) if n.plane == self.plane and n.id not in running]

    async def run_ready(self) -> None:
        """Run every ready node of this plane, concurrently, until none is ready or running.

        A node's end is written at once while others still run or before new ones start; the last
        ones are written by the hand-off or finish that follows, in the same atomic commit.
        """
        running: dict[asyncio.Task[None], Node] = {}
        try:
            while True:
                if not self.cancel.is_set():
                    self.skip_blocked()
                    ready = self.ready_here({n.id for n in running.values()})
                    if ready and self.unrecorded:
                        await self.record(self.take_unrecorded())
                    for node in ready:
                        running[asyncio.create_task(self.run_node(node))] = node
                if not running:
                    return
                waiter: asyncio.Future[Any] = asyncio.ensure_future(self.cancel.wait())
                done, _ = await asyncio.wait({*running, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                for t in done:
                    if t is not waiter:
                        running.pop(t)  # type: ignore[call-overload]
                        t.result()  # LostClaim / Redis errors abort the whole run
                if running and self.unrecorded:
                    await self.record(self.take_unrecorded())
        finally:
            for t in running:
                t.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    def take_unrecorded(self) -> list[Node]:
        nodes, self.unrecorded = self.unrecorded, []
        return nodes

    def skip_blocked(self) -> None:
        """Pending nodes downstream of a failed, skipped or cancelled node are skipped (on any plane)."""
        assert self.graph is not None
        blocked = {n.id for n in self.graph.nodes if n.status in ("failed", "skipped", "cancelled")}
        progress = bool(blocked)
        while progress:
            progress = False
            for n in self.graph.nodes:
                if n.status == "pending" and not self.preds[n.id].isdisjoint(blocked):
                    n.status = "skipped"
                    blocked.add(n.id)
                    self.unrecorded.append(n)
                    progress = True

    # ---- one node: resolve inputs -> run -> record, with retries

    async def run_node(self, node: Node) -> None:
        try:
            service = self.ex.registry.get(node.service)
        except SpinbotError as e:
            await self.fail_node(node, e, attempted=False)
            return
        mb = service.memory_mb if service.gpu else 0
        if reason := (self.ex.gpu.impossible(mb) if service.gpu else None):
            await self.fail_node(node, PermanentError(f"{service.id} {reason}"), attempted=False)
            return
        async with self.ex.node_slots:
            if service.gpu:
                async with self.ex.gpu.admit(mb):
                    await self.attempts(node, service)
            else:
                await self.attempts(node, service)

    async def attempts(self, node: Node, service: Service) -> None:
        policy = service.retry
        for attempt_here in range(1, policy.max_attempts + 1):
            if self.cancel.is_set():
                await self.finish_node(node, "cancelled")
                return
            node.attempts += 1
            node.status, node.error, node.output = "running", None, None
            self.node_progress[node.id] = 0.0
            await self.record([node])
            started = time.perf_counter()
            try:
                output = await self.run_once(node, service)
            except Cancelled:
                M.NODE_DURATION.labels(service.id, self.plane, "cancelled").observe(time.perf_counter() - started)
                await self.finish_node(node, "cancelled")
                return
            except (LostClaim, *QUEUE_DOWN):
                raise  # the executor's own Redis is gone: an outage, the entry stays pending
            except Exception as exc:  # the task's own failure, OSError included (a file that is not an image)
                err = classify(exc)
                M.NODE_DURATION.labels(service.id, self.plane, "failed").observe(time.perf_counter() - started)
                if err.transient and attempt_here < policy.max_attempts and not self.cancel.is_set():
                    delay = policy.delay(attempt_here)
                    log.info("node retry job=%s node=%s plane=%s attempt=%d in %.2f s: %s",
                             self.job_id, node.id, self.plane, node.attempts, delay, err.message)
                    await self.emit("log", {"node": node.id, "message": f"attempt {node.attempts} failed "
                                            f"({err.message}); retrying in {delay:.2f} s"})
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.cancel.wait(), timeout=delay)
                    continue
                await self.fail_node(node, err)
                return
            M.NODE_DURATION.labels(service.id, self.plane, "completed").observe(time.perf_counter() - started)
            node.output = output
            await self.finish_node(node, "completed")
            return

    async def run_once(self, node: Node, service: Service) -> dict[str, Any]:
        """resolve inputs -> validate -> run the handler in a fresh workdir, with timeout and cancellation."""
        params = self.resolve_inputs(node)
        try:
            model = service.params.model_validate(params)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'params'}: {x['msg']}" for x in e.errors())
            raise PermanentError(f"invalid params for {service.id} on node {node.id}: {problems}") from None
        workdir = self.ex.workdirs.acquire()
        assert self.graph is not None
        ctx = TaskContext(
            job_id=self.job_id, node_id=node.id, attempt=node.attempts, settings=self.ex.settings,
            store=OwnedStore(self.ex.artifacts, owner=self.parsed.owner if self.parsed else "", job_id=self.job_id,
                             owner_of=self.ex.store.object_owner if self.ex.store else None),
            emit=self._emitter(node), workdir=workdir, cancel=self.cancel,
            graph_context=self.parsed.context if self.parsed else {}, device=self.ex.device,
        )
        M.EXECUTOR_INFLIGHT.labels(self.plane).inc()
        try:
            output = await self._guarded(service, ctx, model)
        finally:
            M.EXECUTOR_INFLIGHT.labels(self.plane).dec()
            await self.ex.workdirs.release(workdir)
        if not isinstance(output, dict):
            raise PermanentError(f"{service.id} returned {type(output).__name__}, not a dict of outputs")
        return output

    async def _guarded(self, service: Service, ctx: TaskContext, params: Any) -> dict[str, Any]:
        task = asyncio.ensure_future(service.handler(ctx, params))
        waiter = asyncio.ensure_future(self.cancel.wait())
        try:
            done, _ = await asyncio.wait({task, waiter}, timeout=service.timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            if waiter in done:  # cooperative first: the task sees ctx.cancel and stops itself
                done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
                if task in done:
                    return task.result()
                raise Cancelled(f"job {self.job_id} was cancelled")
            raise NodeTimeout(f"{service.id} did not finish within its timeout of {service.timeout_s:g} s")
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def resolve_inputs(self, node: Node) -> dict[str, Any]:
        assert self.graph is not None
        graph = self.graph

        def lookup(ref: Ref) -> Any:
            if isinstance(ref, NodeRef):
                up = graph.node(ref.node)
                if up.status != "completed" or up.output is None:
                    raise PermanentError(f"node {node.id} needs {ref.node}.{ref.output}, but {ref.node} is {up.status}")
                if ref.output not in up.output:
                    raise PermanentError(
                        f"node {node.id} references output {ref.output!r} of node {ref.node!r}, "
                        f"which has outputs: {', '.join(sorted(up.output)) or 'none'}",
                        hint="fix the reference in the graph",
                    )
                return up.output[ref.output]
            assert isinstance(ref, AttachmentRef)
            for a in graph.context.attachments:
                if a.id == ref.attachment:
                    return a.model_dump(mode="json", by_alias=True, exclude_none=True)
            raise PermanentError(f"node {node.id} references unknown attachment {ref.attachment!r}")

        return resolve_params(node.params, lookup)

    # ---- record

    async def fail_node(self, node: Node, err: SpinbotError, *, attempted: bool = True) -> None:
        node.error = NodeError(code=err.code, message=err.message[:20000], transient=err.transient, hint=err.hint)
        await self.finish_node(node, "failed")

    async def finish_node(self, node: Node, status: str) -> None:
        """A node's end: written by run_ready (at once, or with the hand-off/finish that follows)."""
        node.status = status  # type: ignore[assignment]
        if status != "failed":
            node.error = None
        self.node_progress.pop(node.id, None)
        self.unrecorded.append(node)

    def node_writes(self, nodes: list[Node]) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        """The record fields and events for these nodes' states; logs one line per transition."""
        states = {n.id: node_state(n) for n in nodes}
        self.changed.update(states)
        fields: dict[str, Any] = {f"{NODE_FIELD}{nid}": dumps(st) for nid, st in states.items()}
        events = []
        for n in nodes:
            data: dict[str, Any] = {"node": n.id, "service": n.service, "plane": n.plane, "status": n.status,
                                    "attempts": n.attempts}
            if n.error:
                data["error"] = n.error.model_dump(mode="json", exclude_none=True)
            if n.output is not None and n.status == "completed":
                data["output"] = n.output
            events.append(("node", data))
            log.info("node %s job=%s node=%s plane=%s service=%s attempts=%d%s", n.status, self.job_id, n.id,
                     n.plane, n.service, n.attempts, f" error={n.error.message!r}" if n.error else "")
        return fields, events

    async def record(self, nodes: list[Node]) -> None:
        """Persist node states to the job record at once (fenced) with one event per node."""
        fields, events = self.node_writes(nodes)
        fields["progress"] = repr(self.job_progress())
        await self.lease.commit(fields, events)
        if self.lease.cancel_requested:
            self.request_cancel()

    def _emitter(self, node: Node) -> Any:
        async def emit(kind: str, data: dict[str, Any]) -> None:
            if kind == "progress":
                self.node_progress[node.id] = float(data.get("progress", 0.0))
                data = {**data, "job_progress": self.job_progress()}
            elif kind == "artifact" and self.ex.store is not None:
                info = ArtifactInfo(str(data["key"]), int(data["size"]), str(data["sha256"]), str(data["contentType"]))
                record = self.ex.store.add_artifact(self.job_id, node.id, str(data["name"]), info)
                try:  # recorded before it is announced, so a client can fetch it as soon as it hears of it
                    await asyncio.wait_for(record, timeout=2.0)
                except Exception as e:  # Postgres down or slow: the writer retries; the run goes on
                    log.warning("job=%s node=%s artifact %s not yet recorded (%s); retrying in the background",
                                self.job_id, node.id, data["key"], e)
                    self.ex.background(self.ex.store.add_artifact(self.job_id, node.id, str(data["name"]), info),
                                       f"artifact {data['key']}")
            await self.emit(kind, data)

        return emit

    async def emit(self, kind: str, data: dict[str, Any]) -> None:
        fields = {"progress": repr(data["job_progress"])} if kind == "progress" else {}
        await self.lease.commit(fields, [(kind, data)])
        if self.lease.cancel_requested:
            self.request_cancel()

    # ---- hand off or finish, then ack

    async def hand_off_or_finish(self) -> None:
        assert self.graph is not None
        if self.cancel.is_set():
            for n in self.graph.nodes:
                if n.status not in TERMINAL_NODE:
                    n.status = "cancelled"
                    self.unrecorded.append(n)
            await self.finish("cancelled")
            return
        self.skip_blocked()
        elsewhere = [n for n in ready_nodes(self.graph, self.preds) if n.plane != self.plane]
        if elsewhere:
            await self.hand_off(elsewhere[0].plane)
            return
        if all(n.status in TERMINAL_NODE for n in self.graph.nodes):
            failed = [n for n in self.graph.nodes if n.status == "failed"]
            await self.finish("failed" if failed else "completed", failed)
            return
        stuck = [n.id for n in self.graph.nodes if n.status not in TERMINAL_NODE]
        for n in self.graph.nodes:
            if n.status not in TERMINAL_NODE:
                n.status = "skipped"
                self.unrecorded.append(n)
        await self.finish("failed", error={"code": "stuck", "message": f"nodes can never run: {', '.join(stuck)}"})

    def document(self) -> dict[str, Any]:
        """The graph document with this run's node states (cheap: no model serialisation)."""
        assert self.graph is not None and self.parsed is not None
        return doc_with_states(self.parsed.doc, {n.id: node_state(n) for n in self.graph.nodes})

    async def hand_off(self, target: str) -> None:
        """Enqueue on the other plane and ack here, atomically; node states stay in the record's fields."""
        assert self.graph is not None
        self.version += 1
        progress = self.job_progress()
        t0 = time.perf_counter()
        fields, events = self.node_writes(self.take_unrecorded())
        target_fields: dict[str, Any] = {"job": self.job_id, "version": self.version, "progress": repr(progress)}
        delta = dumps(self.changed)
        if len(delta) <= MAX_DELTA_BYTES:  # larger: the next executor reads the record instead
            target_fields["delta"] = delta
        await self.lease.commit(
            {**fields, "status": "running", "plane": target, "version": self.version, "progress": repr(progress)},
            [*events, ("job", {"status": "running", "progress": progress, "plane": target})],
            mode="handoff", target=C.plane_stream(target), target_fields=target_fields,
        )
        if self.parsed is not None:
            self.parsed.version = self.version
        M.HANDOFFS.labels(self.plane, target).inc()
        log.info("handed off job=%s plane=%s -> %s version=%d (%.2f ms)", self.job_id, self.plane, target,
                 self.version, (time.perf_counter() - t0) * 1000)
        if self.ex.writer is not None and self.parsed is not None:
            states = {n.id: node_state(n) for n in self.graph.nodes}
            self.ex.writer.add(Snapshot(self.job_id, self.version, "running", target, progress,
                                        self.parsed.doc, states))

    async def finish(self, status: str, failed: list[Node] | None = None,
                     error: dict[str, Any] | None = None) -> None:
        assert self.graph is not None
        self.version += 1
        if status == "failed" and error is None and failed:
            first = failed[0]
            msg = first.error.message if first.error else "failed"
            error = {"code": "node_failed", "message": f"node {first.id} ({first.service}) failed: {msg}",
                     "nodes": [n.id for n in failed]}
        progress = 1.0 if status == "completed" else self.job_progress()
        doc = self.document()
        # Postgres first, so its record is terminal no later than Redis says so.
        await self._store_terminal(status, progress, doc, error)
        event: dict[str, Any] = {"status": status, "progress": progress}
        if error:
            event["error"] = error
        _, events = self.node_writes(self.take_unrecorded())
        await self.lease.commit(
            {"status": status, "plane": "", "version": self.version, "graph": dumps(doc),
             "progress": repr(progress), "error": dumps(error) if error else ""},
            [*events, ("job", event)], mode="finish", clear_nodes=True,
        )
        M.JOBS.labels(status).inc()
        self.ex.graphs.drop(self.job_id)
        log.info("job %s job=%s plane=%s version=%d", status, self.job_id, self.plane, self.version)
        await self._sync_store_final()

    async def _store_terminal(self, status: str, progress: float, doc: dict[str, Any],
                              error: dict[str, Any] | None) -> None:
        store = self.ex.store
        if store is None:
            return
        delay = 0.2
        for attempt in range(1, POSTGRES_FINISH_TRIES + 1):
            try:
                await store.record_transition(self.job_id, status=status, progress=progress, plane=None,
                                              version=self.version, graph=doc, error=error)
                return
            except Exception as e:
                log.error("Postgres unreachable while finishing job=%s (%s): attempt %d of %d; "
                          "check SPINBOT_DATABASE_URL / that Postgres runs", self.job_id, e, attempt,
                          POSTGRES_FINISH_TRIES)
                await asyncio.sleep(delay)
                delay *= 2

    async def _sync_store_final(self) -> None:
        """All events (the terminal one too) into Postgres; on failure a background retry, then start-up repair."""
        if self.ex.store is None:
            return
        try:
            await self.ex.queue.sync_store(self.job_id)
        except Exception as e:
            log.error("Postgres sync of finished job=%s failed (%s); retrying in the background", self.job_id, e)
            self.ex.background(_retry_forever(lambda: self.ex.queue.sync_store(self.job_id)),
                               f"job {self.job_id} final sync")


async def _retry_forever(make: Any, first_delay: float = 1.0) -> None:
    delay = first_delay
    while True:
        try:
            await make()
            return
        except Exception as e:
            log.warning("retrying a Postgres write in %.0f s: %s", delay, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)


def _float(raw: str | None) -> float:
    try:
        return float(raw or 0.0)
    except ValueError:
        return 0.0


def _loads(raw: str) -> Any:
    import orjson

    return orjson.loads(raw)
