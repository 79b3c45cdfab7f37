"""One error hierarchy: every failure is transient (retry) or permanent (fail now)."""

from __future__ import annotations

import asyncio

import redis.exceptions


class SpinbotError(Exception):
    """Base of every error Spinbot raises on purpose."""

    code = "error"
    transient = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


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


def classify(exc: BaseException) -> SpinbotError:
    """Map any exception to a SpinbotError that says whether a retry may help."""
    if isinstance(exc, SpinbotError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return NodeTimeout(str(exc) or "timed out")
    if isinstance(exc, ConnectionError | redis.exceptions.ConnectionError):
        return TransientError(f"{type(exc).__name__}: {exc}")
    # Any other OSError (a file that does not decode, a missing file, a full disk) is the task's own
    # failure: retrying the same input cannot help unless the service says otherwise.
    return PermanentError(f"{type(exc).__name__}: {exc}")
