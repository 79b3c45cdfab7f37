"""The one backoff helper: delays that double from `first_s` up to `cap_s`.

- `Backoff` for long-running loops that keep state between failures (a claim loop, a listener):
  `delay = b.next()` after a failure, `b.reset()` after a success. The curve is redis-py's
  `redis.backoff.ExponentialBackoff` (min(cap, first * 2**failures)).
- `retry(op, ...)` for one operation retried until it succeeds or `tries` run out: tenacity's
  `AsyncRetrying` with `wait_exponential`, logging each failure.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.backoff import ExponentialBackoff
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_never,
    wait_exponential,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class Backoff:
    """Delays in seconds for consecutive failures: first_s, 2 * first_s, ... at most cap_s."""

    def __init__(self, first_s: float = 0.5, cap_s: float = 10.0) -> None:
        self._curve = ExponentialBackoff(cap=cap_s, base=first_s)
        self.failures = 0

    def next(self) -> float:
        delay = float(self._curve.compute(self.failures))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


async def retry(op: Callable[[], Awaitable[T]], *, what: str, tries: int | None = None, first_s: float = 1.0,
                cap_s: float = 60.0, retry_if: Callable[[BaseException], bool] | None = None) -> T:
    """await op() until it succeeds; at most `tries` attempts (None: forever), then its error is raised.
    With `retry_if`, only the errors it accepts are retried (any other is raised at once).
    Every failure retried is logged as a warning naming `what`."""

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s failed (attempt %d: %s); retrying in %.1f s", what, state.attempt_number, exc, delay)

    async for attempt in AsyncRetrying(wait=wait_exponential(multiplier=first_s, max=cap_s),
                                       stop=stop_after_attempt(tries) if tries else stop_never,
                                       retry=retry_if_exception(lambda e: isinstance(e, Exception)
                                                                and (retry_if is None or retry_if(e))),
                                       before_sleep=note, reraise=True):
        with attempt:
            return await op()
    raise AssertionError("unreachable: AsyncRetrying re-raises the last error")
