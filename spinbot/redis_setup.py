"""Is this Redis safe to keep jobs in? Its maxmemory-policy must be noeviction.

A Redis that evicts keys under memory pressure (any other policy) silently loses stream entries, job
records and consumer groups: jobs vanish or stall with executors that look alive. With noeviction a
full Redis refuses writes instead (an error every part handles: 503 in the API, backoff in the loops),
and nothing is lost. Sidekiq and BullMQ check the same at start. Checked at every process' start and
by /health; production mode (SPINBOT_PRODUCTION) refuses to start on it, otherwise it is a loud warning.
"""

from __future__ import annotations

import logging
import socket

import redis.asyncio as aioredis

from spinbot.errors import PermanentError

log = logging.getLogger(__name__)

SAFE_POLICY = "noeviction"

#: TCP keepalive of the executors' connections: a dead Redis or link is found ~25 s after it went quiet.
KEEPALIVE = {opt: v for name, v in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
             if (opt := getattr(socket, name, None)) is not None}


def executor_client(url: str) -> aioredis.Redis:
    """The executors' Redis client (str replies). No per-command timeout: redis-py's default 5 s
    `socket_timeout` wraps every write in `asyncio.wait_for` and every read in a timer, a Task and a timer
    per command on the hot path. A server or link that dies is found instead by TCP keepalive (KEEPALIVE)
    and by the health check (PING) before a command on a connection idle for 10 s; a server that hangs
    stops this executor's manifest heartbeat and claim heartbeats, so its entries are reclaimed elsewhere."""
    if url.startswith(("redis://", "rediss://")):
        return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=10, socket_timeout=None,
                                       socket_keepalive=True, socket_keepalive_options=KEEPALIVE)
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=10, socket_timeout=None)


class UnsafeSetup(PermanentError):
    """A setup that loses data silently; refused in production mode."""

    code = "unsafe_setup"


async def eviction_policy(redis: aioredis.Redis) -> str | None:
    """Redis' maxmemory-policy, from INFO memory (CONFIG GET is often disabled on managed Redis);
    None when the server does not say."""
    info = await redis.info("memory")
    policy = info.get("maxmemory_policy")
    return None if policy is None else str(policy)


def eviction_problem(policy: str | None) -> str | None:
    """What is wrong with `policy`, or None when it is safe (or unknown: nothing to go by)."""
    if policy is None or policy == SAFE_POLICY:
        return None
    return (f"Redis' maxmemory-policy is {policy}: when Redis fills up it evicts keys, and jobs, their stream "
            f"entries and consumer groups vanish silently. Set it to {SAFE_POLICY} (redis-server "
            f"--maxmemory-policy {SAFE_POLICY}, or CONFIG SET maxmemory-policy {SAFE_POLICY})")


async def check_eviction(redis: aioredis.Redis, *, production: bool, who: str) -> str | None:
    """At a process' start: the problem with Redis' eviction policy, logged as an error; in production
    mode raised as UnsafeSetup instead. Returns the problem (None when the policy is safe)."""
    problem = eviction_problem(await eviction_policy(redis))
    if problem is None:
        return None
    if production:
        raise UnsafeSetup(f"{who} refuses to start: {problem}",
                          hint="or unset SPINBOT_PRODUCTION to run anyway (not for data you want to keep)")
    log.error("%s: %s. (SPINBOT_PRODUCTION=true refuses to start on this.)", who, problem)
    return problem
