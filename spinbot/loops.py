"""The one way to run a background loop: it survives any error of a step and goes on.

Every loop that runs beside request handling or job claiming (the live-manifest heartbeat, claim
heartbeats, reconciliation, the cancel listener, the claim loop, the record writer, the event hub's
readers) is `forever(step, ...)`: `await step()` again and again. A step that raises waits out
spinbot.backoff's curve and is tried again; an infrastructure fault (spinbot.errors.outage: Redis or
Postgres unreachable, out of memory, read-only, too slow) is one warning line per failure, anything else
a logged traceback (a bug, but the loop still goes on). The first success after failures says so.
Only cancellation, or `stop` being set, ends a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from spinbot.backoff import Backoff
from spinbot.errors import outage

log = logging.getLogger(__name__)


@dataclass
class LoopHealth:
    """What a loop did last (monotonic seconds): read by liveness checks and tests."""

    name: str
    last_ok: float | None = None
    failures: int = 0  # consecutive failed steps (0: the last step succeeded)
    last_error: str | None = None


async def forever(
    step: Callable[[], Awaitable[object]],
    *,
    name: str,
    every_s: float | Callable[[], float] = 0.0,
    stop: asyncio.Event | None = None,
    backoff: Backoff | None = None,
    on_error: Callable[[BaseException], Awaitable[object] | None] | None = None,
    health: LoopHealth | None = None,
    delay_first: bool = False,
) -> None:
    """Run `await step()` until cancelled or `stop` is set, waiting `every_s` (a number or a function
    giving one) after each success and the backoff's next delay (default 0.5 s doubling to 10 s) after
    each failure. `on_error(exc)` runs after a failure (its own errors are logged, never raised).
    `delay_first`: wait `every_s` before the first step too. Never raises anything but CancelledError."""
    backoff = backoff or Backoff(0.5, 10.0)
    health = health or LoopHealth(name)
    if delay_first:
        await _sleep(every_s() if callable(every_s) else every_s, stop)
    while stop is None or not stop.is_set():
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            delay = backoff.next()
            health.failures += 1
            health.last_error = f"{type(e).__name__}: {e}"
            part = outage(e)
            if part is not None:
                log.warning("%s: %s unavailable (%s: %s); trying again in %.1f s", name, part, type(e).__name__,
                            e, delay)
            else:
                log.exception("%s failed; trying again in %.1f s", name, delay)
            if on_error is not None:
                try:
                    result = on_error(e)
                    if result is not None:
                        await result
                except Exception:
                    log.exception("%s: its error handler failed", name)
        else:
            if health.failures:
                log.warning("%s works again after %d failed tr%s", name, health.failures,
                            "y" if health.failures == 1 else "ies")
            health.failures, health.last_error, health.last_ok = 0, None, time.monotonic()
            backoff.reset()
            delay = every_s() if callable(every_s) else every_s
        await _sleep(delay, stop)  # even 0: a step that never awaits must not starve the event loop


async def _sleep(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None or seconds <= 0:
        await asyncio.sleep(seconds)
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
