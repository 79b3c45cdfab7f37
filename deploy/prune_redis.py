"""Drop finished jobs from Redis once Postgres holds their whole record; the API then serves them from Postgres.

Redis keeps every job's hash and event stream until something removes them (about 10-35 KB a job,
see docs/operations.md). A job is dropped only when it is finished (completed, failed or cancelled),
older than the cutoff, and its last event has been copied to Postgres (the hash's `synced` field),
all checked and deleted in one Lua script so a job that changes meanwhile is kept.

    python deploy/prune_redis.py --older-than-days 7 [--dry-run]
    docker compose exec api python deploy/prune_redis.py --older-than-days 7
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from spinbot import constants as C
from spinbot.runtime import resolve
from spinbot.settings import Settings

log = logging.getLogger(__name__)

BATCH = 500

# KEYS: job hash, events stream, jobs index. ARGV: job id, terminal statuses..., dry-run ("1"/"0")
# Returns 1 when the job was (or, dry, would be) dropped.
_PRUNE = """
local status = redis.call('HGET', KEYS[1], 'status')
local terminal = false
for i = 2, #ARGV - 1 do
  if status == ARGV[i] then terminal = true end
end
if not terminal then return 0 end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last > 0 and redis.call('HGET', KEYS[1], 'synced') ~= last[1][1] then return 0 end
if ARGV[#ARGV] == '1' then return 1 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class PruneResult:
    examined: int
    dropped: int


async def prune(redis: aioredis.Redis, *, older_than_s: float, dry_run: bool = False) -> PruneResult:
    """Drop finished, fully recorded jobs created more than `older_than_s` ago."""
    script = redis.register_script(_PRUNE)
    cutoff = time.time() - older_than_s
    terminal = ["completed", "failed", "cancelled"]
    examined = dropped = 0
    start = 0
    while True:
        ids = await redis.zrangebyscore(C.JOBS_INDEX, "-inf", cutoff, start=start, num=BATCH)
        if not ids:
            return PruneResult(examined, dropped)
        kept = 0
        for raw in ids:
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            examined += 1
            keys = [C.job_key(job_id), C.job_events_key(job_id), C.JOBS_INDEX]
            if int(await script(keys=keys, args=[job_id, *terminal, "1" if dry_run else "0"])):
                dropped += 1
                kept += 1 if dry_run else 0
            else:
                kept += 1
        start += kept  # dropped ids left the index, so the next page starts after the ones kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--older-than-days", type=float, required=True, help="keep jobs newer than this")
    parser.add_argument("--dry-run", action="store_true", help="count what would be dropped, drop nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = resolve(Settings())
    if not settings.redis_url:
        print("SPINBOT_REDIS_URL is not set and no `spinbot up` is running", file=sys.stderr)
        return 2

    async def run() -> PruneResult:
        client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)  # type: ignore[arg-type]
        try:
            return await prune(client, older_than_s=args.older_than_days * 86400, dry_run=args.dry_run)
        finally:
            await client.aclose()

    result = asyncio.run(run())
    verb = "would drop" if args.dry_run else "dropped"
    log.info(
        "examined %d jobs older than %.1f days; %s %d",
        result.examined,
        args.older_than_days,
        verb,
        result.dropped,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
