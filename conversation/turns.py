"""The end of a chat turn, whichever API process began it: open turns are claims in Redis that expire.

A turn that runs a job stores its "Running as job ..." message with `metadata.turn = "open"` and claims
it in one sorted set (constants.OPEN_TURNS: message id -> claim expiry, unix s; 0: nobody follows it).
The API process that follows the job renews its claims every `turn_lease_s / 3` and, at the job's end,
writes the final answer and closes the turn. If that process dies, or stops following (the OpenAI
endpoint's wait limit), the claim lapses: every API sweeps the lapsed claims as often as it renews,
and writes the answer of each turn whose job has ended. Writing the answer is a conditional UPDATE
(only while the message is still open), so however many processes race, a turn ends once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from spinbot import constants as C
from spinbot.queue import JobState

if TYPE_CHECKING:
    from conversation.services import Services

log = logging.getLogger(__name__)

OPEN = "open"  # messages.metadata.turn while the turn's job has not been answered


class OpenTurns:
    """This API process's claims on open chat turns (by message id), and the lapsed claims of any process."""

    def __init__(self, redis: aioredis.Redis, lease_s: float) -> None:
        self.redis = redis
        self.lease_s = lease_s
        self.mine: set[int] = set()

    async def claim(self, message_id: int) -> None:
        """This process follows the turn of `message_id` (renewed by renew() while it does)."""
        self.mine.add(message_id)
        await self.redis.zadd(C.OPEN_TURNS, {str(message_id): time.time() + self.lease_s})

    async def let_go(self, message_id: int) -> None:
        """Stop following an open turn: the sweep of any API answers it when its job ends."""
        self.mine.discard(message_id)
        await self.redis.zadd(C.OPEN_TURNS, {str(message_id): 0})

    async def closed(self, message_id: int) -> None:
        """The turn has its answer: forget it."""
        self.mine.discard(message_id)
        await self.redis.zrem(C.OPEN_TURNS, str(message_id))

    async def renew(self) -> None:
        """Push back the expiry of this process's claims (one command; claims closed meanwhile stay closed)."""
        if self.mine:
            until = time.time() + self.lease_s
            await self.redis.zadd(C.OPEN_TURNS, {str(m): until for m in self.mine}, xx=True)

    async def lapsed(self, count: int = 100) -> list[int]:
        """Open turns nobody follows any more (their claim expired or was let go), oldest claim first."""
        ids: list[Any] = await self.redis.zrangebyscore(C.OPEN_TURNS, "-inf", time.time(), start=0, num=count)
        return [int(m) for m in ids if int(m) not in self.mine]


async def upkeep(services: Services) -> None:
    """Every turn_lease_s / 3 until cancelled: renew this process's claims, then answer lapsed turns."""
    every = services.turns.lease_s / 3
    while True:
        await asyncio.sleep(every)
        try:
            await services.turns.renew()
            await sweep(services)
        except Exception as e:  # Redis or Postgres away: the next round tries again
            log.warning("chat turn upkeep failed (%s: %s); trying again in %.0f s", type(e).__name__, e, every)


async def sweep(services: Services) -> list[int]:
    """Write the final answer of every lapsed turn whose job has ended; returns the message ids answered here."""
    answered: list[int] = []
    for message_id in await services.turns.lapsed():
        if await finish_orphan(services, message_id):
            answered.append(message_id)
    return answered


async def finish_orphan(services: Services, message_id: int) -> bool:
    """Answer one lapsed turn if its job has ended (True when this call wrote the answer)."""
    # conversation.answers needs conversation.services, which needs this module
    from conversation.answers import answer_for

    row = await services.repo.message(message_id)
    meta: dict[str, Any] = (row or {}).get("metadata") or {}
    if row is None or meta.get("turn") != OPEN or not row.get("job_id"):
        await services.turns.closed(message_id)
        return False
    job_id = row["job_id"]
    state = await services.queue.get(job_id) or await _recorded(services, job_id)
    if state is not None and not state.terminal:
        return False  # still running: the next sweep looks again
    text = (answer_for(state, job_id, str(meta.get("base_url") or ""), services) if state is not None
            else f"Job `{job_id}` is gone.")
    if note := meta.get("note"):
        text += f"\n\n{note}"
    wrote = await services.repo.close_turn(message_id, text, state.status if state else None)
    await services.turns.closed(message_id)
    if wrote:
        log.info("answered the chat turn of job=%s (message %d): the API that began it no longer follows it",
                 job_id, message_id)
    return wrote


async def _recorded(services: Services, job_id: str) -> JobState | None:
    """The job as Postgres recorded it (Redis pruned it or lost it)."""
    row = await services.store.get_job(job_id)
    if row is None:
        return None
    return JobState(id=job_id, status=row["status"], progress=float(row["progress"] or 0.0), plane=row["plane"],
                    version=int(row["version"] or 0), owner=row["owner"], graph=row["graph"], error=row["error"],
                    created=row["created_at"].timestamp(), updated=row["updated_at"].timestamp(),
                    pipeline=row["pipeline"])
