"""An executor's background loops beside the claim loop: claim heartbeats, cancels, the live sweep and
consumer sweep, the live manifest, re-probing its services. Each takes the Executor and runs until
cancelled, through spinbot.loops.forever (any error of a step is logged and the loop goes on)."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass
from typing import Any, Protocol

from executors.interface import ExecutorAPI
from spinbot import capabilities
from spinbot.loops import LoopHealth, forever

log = logging.getLogger(__name__)


class Upkept(ExecutorAPI, Protocol):
    """What the loops here use of their Executor (core.Executor), beyond what its JobRuns do."""

    claim_health: LoopHealth  # the claim loop's turns: the executor's liveness
    claim_watch: ClaimWatch  # the manifest heartbeat's view of them

    def manifest(self) -> Any: ...  # the live manifest as last probed
    def build_manifest(self) -> Any: ...  # probe the services now (blocking: run it in a thread)
    def reprobe(self, manifest: Any) -> None: ...


async def reprobe_loop(ex: Upkept, every_s: float = 15.0) -> None:
    """Services' availability can change (an engine starts, a binary appears): re-probe now and then."""

    async def reprobe() -> None:
        ex.reprobe(await asyncio.to_thread(ex.build_manifest))

    await forever(reprobe, name="re-probing the services", every_s=every_s, delay_first=True)


async def reconcile_loop(ex: Upkept) -> None:
    """Every ~reconcile_s: recreate missing consumer groups, then, if no other executor swept in the
    last half interval (a short Redis lock), re-issue every unfinished job whose stream entry vanished
    and remove the consumers of executors gone without leaving.

    The lock only saves work: a sweep is idempotent. With the lock held for half an interval and each
    executor trying once per interval, some executor sweeps at least once every reconcile_s.
    """
    await forever(lambda: reconcile_once(ex), name="reconciliation", delay_first=True,
                  every_s=lambda: ex.settings.reconcile_s * random.uniform(0.8, 1.0))


async def reconcile_once(ex: Upkept) -> list[str]:
    """One reconciliation step: groups recreated; the sweep only if this executor gets the lock."""
    await ex.queue.ensure_groups()
    if not await ex.consumer.sweep_turn(max(1, int(ex.settings.reconcile_s * 500))):
        return []
    reissued = await ex.queue.recovery.reconcile()
    for job_id in reissued:
        log.warning("re-issued job=%s: its stream entry vanished (found by reconciliation)", job_id)
    for name in await ex.consumer.sweep_consumers(consumer_idle_ms(ex.settings.claim_idle_ms)):
        log.info("removed consumer %s from plane=%s: idle, no pending entries (its executor is gone)", name, ex.plane)
    return reissued


def consumer_idle_ms(claim_idle_ms: int) -> int:
    """A consumer idle this long with no pending entry belongs to an executor that is gone (a live one
    reads its stream every second or so)."""
    return 10 * claim_idle_ms


async def heartbeat_loop(ex: Upkept) -> None:
    # a few heartbeats per claim_idle_ms, so a late one does not let a healthy claim be stolen
    interval = min(ex.settings.heartbeat_s, ex.settings.claim_idle_ms / 3000)
    await forever(lambda: heartbeat_once(ex), name="claim heartbeat", every_s=interval, delay_first=True)


async def manifest_loop(ex: Upkept) -> None:
    """Publish the live manifest every heartbeat_s while the claim loop works (see publish_manifest)."""
    await forever(lambda: publish_manifest(ex), name="live-manifest heartbeat", every_s=ex.settings.heartbeat_s,
                  stop=ex.stopping, delay_first=True)  # Executor.run published it just before


@dataclass
class ClaimWatch:
    """What the manifest heartbeat saw of the claim loop: its turn count at the last heartbeat, and for
    how many heartbeats in a row it has not changed."""

    seen_turns: int = -1
    still: int = 0
    withheld: bool = False


async def publish_manifest(ex: Upkept) -> bool:
    """Re-publish the live manifest unless the claim loop has completed no turn for `stall_beats(ex)`
    heartbeats in a row (about half the manifest's TTL): an executor is live (planned for, counted by
    /health) only while it actually claims. Counted in heartbeats, not seconds, so an event loop that is
    merely slow (a busy machine) slows both alike and is not taken for a stuck claim loop. Returns
    whether it published; a stuck or failing claim loop lets the manifest expire."""
    watch, health = ex.claim_watch, ex.claim_health
    if health.turns != watch.seen_turns:
        watch.seen_turns, watch.still = health.turns, 0
    else:
        watch.still += 1
    if watch.still >= stall_beats(ex.settings.heartbeat_s):
        if not watch.withheld:  # once per stall, not at every heartbeat
            log.error("executor %s plane=%s: the claim loop has completed no turn for %d heartbeats (last error: "
                      "%s); not renewing the live manifest until it does", ex.id, ex.plane, watch.still,
                      health.last_error)
        watch.withheld = True
        return False
    await capabilities.publish(ex.redis, ex.manifest(), ttl_s=capabilities.ttl_for(ex.settings.heartbeat_s))
    if watch.withheld:
        log.warning("executor %s plane=%s claims again: live manifest renewed", ex.id, ex.plane)
    watch.withheld = False
    return True


def stall_beats(heartbeat_s: float) -> int:
    """Heartbeats without a claim turn after which an executor stops calling itself live: about half the
    manifest's TTL, at least 2 (a healthy claim loop turns about every second)."""
    return max(2, math.ceil(capabilities.ttl_for(heartbeat_s) / 2 / heartbeat_s))


async def heartbeat_once(ex: Upkept) -> None:
    """Keep the held entries' claims alive; stop the runs whose entry is no longer ours; pick up cancel
    flags (pub/sub is not durable: the record's flag is the backstop)."""
    runs = {eid: r for eid, r in ex.runs.items() if not r.lease.released and r.lost is None}
    if not runs:
        return
    for eid, reason in await ex.consumer.heartbeat(list(runs)):
        run = runs.get(eid)
        # releasing: our own hand-off/finish may just have removed the entry
        if run is None or run.task is None or run.lease.released or run.lease.releasing:
            continue
        run.lost = reason
        if reason == "stolen":
            log.warning("job=%s plane=%s entry=%s was taken over by another executor; stopping here",
                        run.job_id, ex.plane, run.entry)
        else:
            log.warning("job=%s plane=%s entry=%s is %s (trimmed, deleted or its group lost it); "
                        "stopping here and re-issuing the job", run.job_id, ex.plane, run.entry, reason)
        run.task.cancel()
    live = [r for r in runs.values() if r.job_id]
    for r, flag in zip(live, await ex.consumer.cancel_flags([r.job_id for r in live]), strict=True):
        if flag:
            r.request_cancel()


async def cancel_listener(ex: Upkept) -> None:
    """Cancel the runs of the jobs whose cancel is published; resubscribes after an outage."""

    async def listen() -> None:
        async for job_id in ex.consumer.cancel_requests():
            for r in list(ex.runs.values()):
                if r.job_id == job_id:
                    r.request_cancel()

    await forever(listen, name="cancel listener", every_s=1.0)
