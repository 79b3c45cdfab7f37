"""Middleware around the node step: admission, retries, metrics, the attempt itself, the time limit.

The protocol (as dramatiq's middleware, as ASGI's): a middleware is an async callable

    async def mw(step: NodeStep, call_next: Handler) -> dict[str, Any]

that may act before and after `await call_next(step)` (which runs the rest of the chain and returns the
node's outputs), retry it, or not call it (return outputs of its own, or raise). Errors: raise; the
JobRun shell turns `Cancelled` into a cancelled node, any other error (classified by
spinbot.errors.classify) into a failed one; `LostClaim` and the queue's connection errors abort the run.

The chain is built in ONE place, `node_middleware()`, outermost first:

    admission -> retries -> metrics -> attempt -> node cache -> checking -> time_limit -> (the handler)

`attempt` counts the attempt, records the node `running`, resolves and validates its params and gives
it a work directory and a TaskContext (`step.resolved`, `step.params`, `step.ctx`); the middlewares after
it see them.
The node cache (executors/nodecache.py) needs the resolved params and may answer without calling the
handler, so it sits right after `attempt`; it sets `step.reused` on a hit. `checking`
(executors/checking.py) measures the outputs inside the cache, so a reused output keeps its checks.
To add another middleware, insert it into the list `node_middleware()` returns; `chain()` composes
the list around the handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, cast

import orjson
from pydantic import ValidationError

from executors.checking import checking
from executors.interface import Handler, Middleware, NodeStep
from spinbot import metrics as M
from spinbot.errors import Cancelled, LostClaim, NodeTimeout, PermanentError, classify, outage
from spinbot.queue import QUEUE_DOWN
from spinbot.task import TaskContext
from spinbot.text import MAX_TEXT_FILE_BYTES, file_text

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 1.0  # a cancelled node gets this long to stop on its own before its task is interrupted


def chain(middlewares: Sequence[Middleware], handler: Handler) -> Handler:
    """`middlewares` (outermost first) composed around `handler`."""
    for mw in reversed(middlewares):
        handler = partial(mw, call_next=handler)
    return handler


async def call_handler(step: NodeStep) -> dict[str, Any]:
    """The innermost handler: the service's own code. Its output is made plain JSON here, once, so that NumPy
    scalars and arrays a handler returns (a measurement, a face detector's coordinates) reach Redis, the
    events and Postgres as numbers and lists, never as an unserialisable value that crashes the hand-off."""
    assert step.ctx is not None and step.params is not None
    out = await step.service.handler(step.ctx, step.params)
    plain = orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
    return cast(dict[str, Any], orjson.loads(plain))


# ---- the middlewares ----------------------------------------------------------------------------


async def admission(step: NodeStep, call_next: Handler) -> dict[str, Any]:
    """The executor's node slots, and for GPU services a GPU slot and their declared memory."""
    ex, service = step.run.ex, step.service
    mb = service.memory_mb if service.gpu else 0
    if service.gpu and (reason := ex.gpu.impossible(mb)):
        raise PermanentError(f"{service.id} {reason}")
    async with ex.node_slots:
        if not service.gpu:
            return await call_next(step)
        async with ex.gpu.admit(mb):
            return await call_next(step)


async def retries(step: NodeStep, call_next: Handler) -> dict[str, Any]:
    """Transient failures retried per the service's RetryPolicy; a cancel ends the waiting."""
    policy, run = step.service.retry, step.run
    for attempt_here in range(1, policy.max_attempts + 1):
        if run.cancel.is_set():
            raise Cancelled(f"job {run.job_id} was cancelled")
        try:
            return await call_next(step)
        except (Cancelled, LostClaim, *QUEUE_DOWN):
            raise
        except Exception as exc:  # the task's own failure, OSError included (a file that is not an image)
            if outage(exc) == "redis":  # Redis refusing writes (OOM, READONLY) under a progress event: the
                raise  # executor's own outage, not the node's: its entry stays pending and the node runs again
            err = classify(exc)
            if not err.transient or attempt_here >= policy.max_attempts or run.cancel.is_set():
                raise err from (None if err is exc else exc)
            delay = policy.delay(attempt_here)
            log.info("node retry job=%s node=%s plane=%s attempt=%d in %.2f s: %s",
                     run.job_id, step.node.id, run.plane, step.node.attempts, delay, err.message)
            await run.emit("log", {"node": step.node.id, "message": f"attempt {step.node.attempts} failed "
                                   f"({err.message}); retrying in {delay:.2f} s"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.cancel.wait(), timeout=delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


async def metrics(step: NodeStep, call_next: Handler) -> dict[str, Any]:
    """Each attempt's duration by outcome, and the nodes running now."""
    labels = (step.service.id, step.run.plane)
    started = time.perf_counter()
    outcome = "failed"
    inflight = M.EXECUTOR_INFLIGHT.labels(step.run.plane)
    inflight.inc()
    try:
        output = await call_next(step)
        outcome = "completed"
        return output
    except (Cancelled, asyncio.CancelledError):
        outcome = "cancelled"
        raise
    finally:
        inflight.dec()
        M.NODE_DURATION.labels(*labels, outcome).observe(time.perf_counter() - started)


async def attempt(step: NodeStep, call_next: Handler) -> dict[str, Any]:
    """One attempt: counted and recorded `running`, params resolved and validated, a fresh workdir."""
    run, node, service = step.run, step.node, step.service
    await run.begin_attempt(node)
    workdir = run.ex.workdirs.acquire()
    try:
        step.ctx = run.task_context(node, workdir)
        step.resolved = run.resolve_inputs(node)  # the node cache's key: artifacts with their sha256
        params = await read_text_files(step.ctx, service.inputs, step.resolved)
        try:
            step.params = service.params.model_validate(params)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'params'}: {x['msg']}" for x in e.errors())
            raise PermanentError(f"invalid params for {service.id} on node {node.id}: {problems}") from None
        output = await call_next(step)
    finally:
        await run.ex.workdirs.release(workdir)
    if not isinstance(output, dict):
        raise PermanentError(f"{service.id} returned {type(output).__name__}, not a dict of outputs")
    return output


async def read_text_files(ctx: TaskContext, inputs: Mapping[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """`params` with each text-typed input that holds a file (an attachment or artifact descriptor) replaced by
    the file's words (spinbot.text.file_text). PermanentError when the file is over MAX_TEXT_FILE_BYTES or is
    not UTF-8 text."""
    out = dict(params)
    for name, dtype in inputs.items():
        value = params.get(name)
        if dtype != "text" or not isinstance(value, dict) or not isinstance(value.get("key"), str):
            continue
        shown = value.get("name") or value["key"]
        raw = bytearray()
        async for chunk in ctx.store.stream(value["key"]):
            raw += chunk
            if len(raw) > MAX_TEXT_FILE_BYTES:
                raise PermanentError(f"{shown} is over {MAX_TEXT_FILE_BYTES:,} bytes, more text than {name!r} takes",
                                     hint="send a shorter text file")
        text = file_text(bytes(raw))
        if text is None:
            raise PermanentError(f"{shown} is not UTF-8 text", hint="save the file as UTF-8 plain text")
        out[name] = text
    return out


async def time_limit(step: NodeStep, call_next: Handler) -> dict[str, Any]:
    """The service's timeout. The handler runs in the node's own task (no Task per node here); a cancel
    request reaches it cooperatively (ctx.cancel), then JobRun.request_cancel interrupts the node's task
    after CANCEL_GRACE_S."""
    timeout_s = step.service.timeout_s
    try:
        async with asyncio.timeout(timeout_s) as scope:
            return await call_next(step)
    except TimeoutError:
        if not scope.expired():
            raise  # the handler's own
        raise NodeTimeout(f"{step.service.id} did not finish within its timeout of {timeout_s:g} s") from None


def node_middleware(cache: Middleware | None = None) -> list[Middleware]:
    """The node step's middleware, outermost first: the one place to add one. `cache`: the node cache's
    middleware (executors.nodecache.node_cache), or None to run every node."""
    return [admission, retries, metrics, attempt, *([cache] if cache is not None else []), checking, time_limit]
