"""One error hierarchy: every failure is transient (retry) or permanent (fail now)."""

from __future__ import annotations

import asyncio
import traceback
from typing import Any, Literal

import asyncpg
import redis.exceptions

from spinbot.errorcodes import CODES, RETRY_AFTER_S


class SpinbotError(Exception):
    """Base of every error Spinbot raises on purpose."""

    code = "error"
    transient = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def status(self) -> int:
        """The HTTP status of this error's code in the catalogue (spinbot.errorcodes)."""
        return CODES[self.code].status

    @property
    def advice(self) -> str:
        """What to do next: the error's own hint, else its code's in the catalogue."""
        return self.hint or CODES[self.code].hint


class Problem(SpinbotError):
    """A request refused with a catalogued code (spinbot.errorcodes.CODES; KeyError for one that is not):
    `detail` for people, `hint` (more specific than the catalogue's), `extra` fields for the answer (`field`,
    `errors`, `findings`, `limit_mb`, ...), `headers` the answer carries besides the catalogue's (a 416's
    Content-Range). web/problems.py turns it, like any SpinbotError, into HTTP."""

    def __init__(self, code: str, detail: str, *, hint: str | None = None, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        if code not in CODES:
            raise KeyError(f"problem code {code!r} is not in spinbot.errorcodes.CODES")
        super().__init__(detail, hint=hint)
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class TransientError(SpinbotError):
    """Worth retrying: a timeout, a dropped connection, a busy engine."""

    code = "transient"
    transient = True


class PermanentError(SpinbotError):
    """Retrying cannot help: bad input, a missing engine, a bug in the task."""

    code = "permanent"


class InvalidGraph(PermanentError):
    code = "invalid_graph"


class UnknownService(PermanentError):
    code = "unknown_service"


class EngineUnavailable(PermanentError):
    code = "engine_unavailable"


class TooManyJobs(SpinbotError):
    """The owner has `active` unfinished jobs, at its `limit`: nothing was submitted."""

    code = "too_many_jobs"

    def __init__(self, active: int, limit: int) -> None:
        super().__init__(f"this key already has {active} unfinished jobs (limit {limit})",
                         hint="wait for a job to finish or cancel one (POST /api/jobs/{id}/cancel), then retry")
        self.active = active
        self.limit = limit


class Cancelled(SpinbotError):
    code = "cancelled"


class NodeTimeout(TransientError):
    code = "timeout"


class LostClaim(SpinbotError):
    """This executor no longer owns the job's stream entry; another one took it over."""

    code = "lost_claim"


class PoolTimeout(TransientError):
    """No Postgres connection came free in the pool within its acquire timeout (every one is busy)."""

    code = "postgres_busy"


Part = Literal["redis", "postgres"]

#: Postgres errors that mean "unreachable, restarting, overloaded or too slow now", not "this request is wrong":
#: class 08 (connection), 53 (resources: too many connections, disk full), 57 (shutdown, starting up,
#: statement_timeout), 55P03 (lock_timeout), 40 (deadlock, serialization: the same transaction may pass later).
_PG_OUTAGE = (asyncpg.exceptions.PostgresConnectionError, asyncpg.exceptions.InsufficientResourcesError,
              asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.LockNotAvailableError,
              asyncpg.exceptions.TransactionRollbackError)
#: Redis errors of the same kind: unreachable, loading, out of memory (noeviction), a read-only replica.
_REDIS_OUTAGE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.OutOfMemoryError,
                 redis.exceptions.ReadOnlyError, redis.exceptions.MasterDownError, redis.exceptions.TryAgainError,
                 redis.exceptions.ClusterDownError)
#: The same kind in Redis' own words where redis-py has no class for it (first word of the error reply).
_REDIS_OUTAGE_WORDS = ("OOM", "READONLY", "MISCONF", "LOADING", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "BUSY",
                       "CLUSTERDOWN")


def _raised_in(exc: BaseException) -> Part | None:
    """Which client library a bare OSError/TimeoutError came out of (by its traceback), if either."""
    for frame in traceback.extract_tb(exc.__traceback__):
        path = frame.filename.replace("\\", "/")
        if "/asyncpg/" in path:
            return "postgres"
        if "/redis/" in path:
            return "redis"
    return None


def outage(exc: BaseException) -> Part | None:
    """The part ('redis' or 'postgres') that `exc` says is unreachable, restarting, overloaded or too slow
    right now (a retry later may succeed), or None when `exc` is anything else. The one classifier for
    infrastructure faults: the API answers them 503 + Retry-After, the background loops back off and go on.

    A bare OSError or TimeoutError counts when it was raised inside asyncpg or redis-py (a refused
    connection, a command timeout); an exception group counts when one of its members does.
    """
    if isinstance(exc, BaseExceptionGroup):
        return next((p for e in exc.exceptions if (p := outage(e)) is not None), None)
    if isinstance(exc, (PoolTimeout, *_PG_OUTAGE)):
        return "postgres"
    if isinstance(exc, _REDIS_OUTAGE):
        return "redis"
    if isinstance(exc, redis.exceptions.ResponseError):
        return "redis" if str(exc).split(" ", 1)[0] in _REDIS_OUTAGE_WORDS else None
    if isinstance(exc, OSError | TimeoutError):  # TimeoutError is an OSError; listed for clarity
        return _raised_in(exc)
    return None


def classify(exc: BaseException) -> SpinbotError:
    """Map any exception to a SpinbotError that says whether a retry may help."""
    if isinstance(exc, SpinbotError):
        return exc
    if (part := outage(exc)) is not None:
        return TransientError(f"{part} unavailable: {type(exc).__name__}: {exc}")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return NodeTimeout(str(exc) or "timed out")
    if isinstance(exc, ConnectionError | redis.exceptions.ConnectionError):
        return TransientError(f"{type(exc).__name__}: {exc}")
    # Any other OSError (a file that does not decode, a missing file, a full disk) is the task's own
    # failure: retrying the same input cannot help unless the service says otherwise.
    return PermanentError(f"{type(exc).__name__}: {exc}")


def not_found(what: str, ident: str) -> Problem:
    # The same answer for "absent" and "someone else's": ids do not leak across keys.
    return Problem("not_found", f"{what} {ident} does not exist", hint=f"check the {what} id; "
                   "it must have been created with the same API key")


_SETTING = {"redis": "SPINBOT_REDIS_URL", "postgres": "SPINBOT_DATABASE_URL"}
_NAME = {"redis": "Redis", "postgres": "Postgres"}


def unavailable(part: Part, exc: BaseException) -> Problem:
    """503 + Retry-After for an infrastructure fault (spinbot.errors.outage): the request may be sent again.
    The detail names the error's type only (its text, with hosts and ports, goes to the server log)."""
    return Problem(f"{part}_unavailable", f"{_NAME[part]} is unavailable or too busy right now ({type(exc).__name__})",
                   hint=f"retry in {RETRY_AFTER_S} s; if it persists, check that {_NAME[part]} runs and "
                        f"{_SETTING[part]}")
