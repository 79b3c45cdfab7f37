"""One executor core for both planes; the planes differ only in their registries.

The loop is small named steps: claim (Consumer.claim_new / autoclaim) -> JobRun (executors.jobrun):
resolve inputs -> run (through the node-step middleware, executors.middleware) -> record (each node's
end written at once, fenced by the claim) -> hand off or finish (executors.handoff; XADD to the other
plane and XACK+XDEL in one Lua script). Around them: claim heartbeats, the cancel listener, the live
sweep for lost entries (spinbot.queue.recovery), the live manifest, the Postgres writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from executors import upkeep
from executors.admission import Admission
from executors.graphcache import GraphCache
from executors.jobrun import JobRun
from executors.middleware import call_handler, chain, node_middleware
from executors.nodecache import CacheStep, node_cache
from executors.workdirs import Workdirs
from spinbot import capabilities, redis_setup
from spinbot.artifacts import ArtifactStore
from spinbot.backoff import Backoff
from spinbot.errors import LostClaim, outage
from spinbot.loops import LoopHealth, forever
from spinbot.nodecache import NodeCache
from spinbot.queue import REDIS_DOWN, Claim, JobQueue, RecordWriter
from spinbot.queue.interface import QueueAPI
from spinbot.registry import Registry
from spinbot.settings import Settings
from spinbot.store import Store

log = logging.getLogger(__name__)

CLAIM_BLOCK_MS = 1000  # a claim read waits this long for new entries (then autoclaim gets a turn)


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
        queue: QueueAPI | None = None,
    ) -> None:
        """`queue`: the queue to serve (default: JobQueue on `redis`; tests pass a StubQueue)."""
        self.settings = settings
        self.plane = plane
        self.registry = registry
        self.redis = redis
        self.store = store
        self.artifacts = artifacts
        self.queue: QueueAPI = queue or JobQueue(redis, store)
        self.id = executor_id or f"{plane}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.consumer = self.queue.consumer(plane, self.id, claim_idle_ms=settings.claim_idle_ms)
        self.device = device
        self.node_slots = asyncio.Semaphore(max(1, settings.concurrency))
        memory = settings.gpu_memory_mb or (int(device["total_mb"]) if device and "total_mb" in device else None)
        self.gpu = Admission(settings.gpu_slots, memory if plane == "gpu" else None)
        cache = (node_cache(CacheStep(NodeCache(store.pool, artifacts)))
                 if store is not None and settings.node_cache else None)
        self.node_step = chain(node_middleware(cache), call_handler)
        self.max_jobs = max(2, settings.concurrency * 2)
        self.runs: dict[str, JobRun] = {}
        self.stopping = asyncio.Event()
        self.started = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self.workdirs = Workdirs(settings.data_dir / "work" / self.id)
        self.graphs = GraphCache()
        self._manifest: Any = None
        self.loops: dict[str, asyncio.Task[Any]] = {}  # the running loops by name (each survives any error)
        self._own_pending = True  # at start and after a Redis outage, first take back our own pending entries
        self._last_autoclaim = 0.0
        self.claim_health = LoopHealth(f"claim loop ({plane})")  # its turns are this executor's liveness
        self.claim_watch = upkeep.ClaimWatch()  # the manifest heartbeat's view of them
        self.writer = RecordWriter(self.queue) if store is not None else None

    # ---- lifecycle

    async def run(self) -> None:
        """Serve until stop(): claim loop, claim heartbeats, cancel listener, live manifest."""
        await self._start_up()
        if self.stopping.is_set():
            return
        self._manifest = await asyncio.to_thread(self.build_manifest)  # probes may touch disk or binaries
        try:  # live before `started` (the manifest loop renews it, and retries when this fails)
            await upkeep.publish_manifest(self)
        except Exception as e:
            log.warning("could not publish the live manifest yet (%s: %s); retrying", type(e).__name__, e)
        loops = {
            "reprobe": upkeep.reprobe_loop(self),
            "claims-heartbeat": upkeep.heartbeat_loop(self),
            **({"postgres-writer": self.writer.run()} if self.writer else {}),
            "cancel-listener": upkeep.cancel_listener(self),
            "reconcile": upkeep.reconcile_loop(self),
            "manifest": upkeep.manifest_loop(self),
        }
        self.loops = {name: asyncio.create_task(coro, name=name) for name, coro in loops.items()}
        helpers = list(self.loops.values())
        claim = self.loops["claim"] = asyncio.create_task(self._claim_loop(), name="claim")
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
            await self._leave()
            self.workdirs.clear()
            with contextlib.suppress(OSError):
                self.workdirs.root.rmdir()
            log.info("executor %s stopped", self.id)

    def stop(self) -> None:
        self.stopping.set()

    def manifest(self) -> Any:
        """The live manifest as last probed (the heartbeat republishes it)."""
        return self._manifest if self._manifest is not None else self.build_manifest()

    def build_manifest(self) -> Any:
        """Probe the services (may touch disk or binaries: run it in a thread)."""
        return self.registry.manifest(self.settings, executor=self.id, device=self.device)

    def reprobe(self, manifest: Any) -> None:
        self._manifest = manifest

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

    async def _leave(self) -> None:
        """A clean stop: this executor's consumer leaves its group (kept while it holds released entries)."""
        try:
            if await self.consumer.leave():
                log.info("executor %s left the consumer group of plane=%s", self.id, self.plane)
            else:
                log.info("executor %s stays in the consumer group of plane=%s until other executors take its "
                         "released entries (the consumer sweep removes it then)", self.id, self.plane)
        except Exception as e:  # a stop is not held up: the consumer sweep removes it later
            log.warning("executor %s could not leave the consumer group (%s: %s); the consumer sweep removes it",
                        self.id, type(e).__name__, e)

    async def _start_up(self) -> None:
        """Redis reachable and safe (its eviction policy), groups created, lost jobs re-issued; retried while
        Redis is down. In production mode a Redis that may evict keys raises UnsafeSetup."""
        backoff = Backoff(0.5, 10.0)
        while not self.stopping.is_set():
            try:
                await self.redis.ping()
                await redis_setup.check_eviction(self.redis, production=self.settings.production,
                                                 who=f"executor {self.id}")
                await self.queue.ensure_groups()
                await self._recover()
                return
            except Exception as e:
                if outage(e) is None:  # an unsafe setup, a bug: not something waiting cures
                    raise
                delay = backoff.next()
                log.error("Redis at %s is unreachable or refuses writes (%s: %s): start Redis, free memory or fix "
                          "SPINBOT_REDIS_URL; retrying in %.1f s", self.settings.redis_url, type(e).__name__, e, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=delay)

    async def _release(self, entries: list[str]) -> None:
        """Hand unfinished entries back at shutdown: marked idle, the next autoclaim elsewhere takes them."""
        if not entries:
            return
        try:
            await self.consumer.release(entries)
            log.info("released %d unfinished job entr%s for other executors", len(entries),
                     "y" if len(entries) == 1 else "ies")
        except REDIS_DOWN as e:
            log.warning("could not release unfinished entries (%s); they are reclaimed after %d ms",
                        e, self.settings.claim_idle_ms)

    async def _recover(self) -> None:
        try:
            reissued = await self.queue.recovery.recover()
        except REDIS_DOWN as e:
            log.error("could not check for lost jobs (Redis unreachable: %s)", e)
            return
        except Exception:
            log.exception("could not check for lost jobs")
            return
        for job_id in reissued:
            log.warning("re-issued job=%s: its stream entry was lost", job_id)

    # ---- claim

    async def _claim_loop(self) -> None:
        await forever(self._claim_turn, name=f"claim loop ({self.plane})", stop=self.stopping,
                      on_error=self._claim_failed, health=self.claim_health)

    def _claim_failed(self, _exc: BaseException) -> None:
        self._own_pending = True  # after an outage, first take back this consumer's own pending entries

    async def _claim_turn(self) -> None:
        """One turn: wait for a free slot (up to 1 s), or claim what there is (waiting up to 1 s for it)."""
        free = self._free_claims()
        if free <= 0:
            self._slot_free.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # not wait_for: no Task per wait (a GPU plane waits once a job)
                    await self._slot_free.wait()
            return
        autoclaim = time.monotonic() - self._last_autoclaim > self.settings.claim_idle_ms / 4000
        if autoclaim:
            self._last_autoclaim = time.monotonic()
        try:
            await self.claim_once(free, own_pending=self._own_pending, autoclaim=autoclaim)
        except redis.exceptions.ResponseError as e:
            if "NOGROUP" not in str(e):
                raise
            log.warning("consumer group missing (Redis restarted without its data?); recreating")
            await self.queue.ensure_groups()
            await self._recover()
            return
        self._own_pending = False

    async def claim_once(self, free: int, *, own_pending: bool = False, autoclaim: bool = False,
                         block_ms: int = CLAIM_BLOCK_MS) -> int:
        """Claim up to `free` entries (first this consumer's own pending ones, then idle ones of dead
        executors, then new ones, waiting up to block_ms) and start serving them; returns how many."""
        claims = await self.consumer.claim_own_pending(self.max_jobs) if own_pending else []
        if autoclaim:
            for c in await self.consumer.autoclaim(free):
                current = self.runs.get(c.entry)
                if current is not None and current.lost is None:
                    continue  # our own run, its heartbeat late: the autoclaim only renewed our claim
                # a run of ours that lost this entry and is ending does not serve it: a fresh run must, or
                # the entry would sit claimed by us and served by nobody until it idles out again
                log.warning("reclaimed entry=%s (idle > %d ms, delivery %d)", c.entry,
                            self.settings.claim_idle_ms, c.deliveries)
                claims.append(c)
        claims += await self.consumer.claim_new(free, block_ms)
        for c in claims:
            self._start(c)
        return len(claims)

    async def settle(self) -> None:
        """Until every claimed entry has been served (its run handed off, finished or stopped)."""
        while tasks := [r.task for r in list(self.runs.values()) if r.task is not None]:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _free_claims(self) -> int:
        """How many entries to claim now. The GPU plane holds at most `gpu_slots` jobs at a time
        (their ready nodes still run concurrently): more would hoard jobs another GPU executor could
        start at once."""
        held = sum(1 for r in self.runs.values() if not r.lease.released)
        if self.plane == "gpu":
            return min(self.max_jobs - len(self.runs), self.gpu.slots - held)
        return self.max_jobs - len(self.runs)

    def _start(self, claim: Claim) -> None:
        current = self.runs.get(claim.entry)
        if current is not None and current.lost is None:
            return  # ours already (a lost run is ending: the entry came back to us, serve it afresh)
        run = JobRun(self, claim)
        self.runs[claim.entry] = run
        run.task = asyncio.create_task(self._serve(run), name=f"entry-{claim.entry}")

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
        except Exception as e:
            if (part := outage(e)) is not None:  # Redis refusing writes, Postgres gone: the entry waits
                log.error("job=%s plane=%s interrupted, %s unavailable (%s: %s); its entry stays pending",
                          run.job_id, self.plane, part, type(e).__name__, e)
            else:  # a bug: the entry stays pending and is redelivered; max_deliveries stops a loop
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
            if run.job_id and await self.queue.recovery.reconcile_job(run.job_id):
                log.warning("re-issued job=%s plane=%s: its entry %s vanished while it ran", run.job_id,
                            self.plane, run.entry)
        except (*REDIS_DOWN, redis.exceptions.ResponseError) as e:
            log.warning("job=%s plane=%s: could not check its entry after the lost claim (%s); "
                        "reconciliation re-issues it within %.0f s if it is gone", run.job_id, self.plane, e,
                        self.settings.reconcile_s)

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
