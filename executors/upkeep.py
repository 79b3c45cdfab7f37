"""An executor's background loops beside the claim loop: claim heartbeats, cancels, the live sweep,
re-probing its services. Each takes the Executor and runs until cancelled."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

import redis.exceptions

from spinbot.backoff import Backoff
from spinbot.queue import REDIS_DOWN

if TYPE_CHECKING:
    from executors.core import Executor

log = logging.getLogger(__name__)


async def reprobe_loop(ex: Executor, every_s: float = 15.0) -> None:
    """Services' availability can change (an engine starts, a binary appears): re-probe now and then."""
    while True:
        await asyncio.sleep(every_s)
        try:
            ex.reprobe(await asyncio.to_thread(ex.build_manifest))
        except Exception:
            log.exception("re-probing the services failed; keeping the last manifest")


async def reconcile_loop(ex: Executor) -> None:
    """Every ~reconcile_s: recreate missing consumer groups, then, if no other executor swept in the
    last half interval (a short Redis lock), re-issue every unfinished job whose stream entry vanished.

    The lock only saves work: a sweep is idempotent. With the lock held for half an interval and each
    executor trying once per interval, some executor sweeps at least once every reconcile_s.
    """
    every = ex.settings.reconcile_s
    while True:
        await asyncio.sleep(every * random.uniform(0.8, 1.0))
        try:
            await reconcile_once(ex)
        except REDIS_DOWN as e:
            log.warning("reconciliation skipped (Redis unreachable: %s)", e)
        except Exception:
            log.exception("reconciliation failed; trying again in %.0f s", every)


async def reconcile_once(ex: Executor) -> list[str]:
    """One reconciliation step: groups recreated; the sweep only if this executor gets the lock."""
    await ex.queue.ensure_groups()
    if not await ex.consumer.sweep_turn(max(1, int(ex.settings.reconcile_s * 500))):
        return []
    reissued = await ex.queue.recovery.reconcile()
    for job_id in reissued:
        log.warning("re-issued job=%s: its stream entry vanished (found by reconciliation)", job_id)
    return reissued


async def heartbeat_loop(ex: Executor) -> None:
    # a few heartbeats per claim_idle_ms, so a late one does not let a healthy claim be stolen
    interval = min(ex.settings.heartbeat_s, ex.settings.claim_idle_ms / 3000)
    while True:
        await asyncio.sleep(interval)
        try:
            await heartbeat_once(ex)
        except REDIS_DOWN as e:
            log.warning("claim heartbeat failed (Redis unreachable: %s)", e)
        except redis.exceptions.ResponseError as e:  # e.g. the stream's key replaced by another type
            log.error("claim heartbeat failed: %s", e)


async def heartbeat_once(ex: Executor) -> None:
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


async def cancel_listener(ex: Executor) -> None:
    """Cancel the runs of the jobs whose cancel is published; resubscribes after an outage."""
    backoff = Backoff(0.5, 10.0)
    while True:
        try:
            async for job_id in ex.consumer.cancel_requests():
                backoff.reset()
                for r in list(ex.runs.values()):
                    if r.job_id == job_id:
                        r.request_cancel()
        except REDIS_DOWN as e:
            delay = backoff.next()
            log.warning("cancel listener lost Redis (%s); resubscribing in %.1f s", e, delay)
            await asyncio.sleep(delay)
