"""The checks middleware: a service's declared checks run on what it made, recorded as `output.checks`.

Sits inside the node cache (a reused output keeps the checks it was stored with) and outside the time
limit (each handler call gets its own). After the handler: the service's `checks(ctx, params, outputs)`
(spinbot/checks.py); when a check misses and the service declares `refine`, the handler runs once more
with the changed params and the checks run again on its outputs; the first run's checks are kept as
`output.refined.first`. A checker that raises or runs out of time is recorded as not checked: a check
never fails the node. One log event per node says what was measured and, against the request's
expectations (spinbot/expectations.py), what differs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic import BaseModel, ValidationError

from executors.interface import Handler, NodeStep
from spinbot.checks import Check, not_checked, why_failed
from spinbot.errors import Cancelled, LostClaim
from spinbot.expectations import check_line, compare
from spinbot.queue import QUEUE_DOWN

log = logging.getLogger(__name__)

#: Longest the checks of one output may take before they are recorded as not checked (s).
CHECK_TIMEOUT_S = 120.0


async def measure(step: NodeStep, params: BaseModel, output: dict[str, Any]) -> list[Check]:
    """The service's checks of `output`, judged against `params` (the node's own); never raises but Cancelled."""
    assert step.service.checks is not None and step.ctx is not None
    try:
        return await asyncio.wait_for(step.service.checks(step.ctx, params, output), CHECK_TIMEOUT_S)
    except TimeoutError:
        return [not_checked("checks", f"measuring took longer than {CHECK_TIMEOUT_S:g} s")]
    except (Cancelled, LostClaim, *QUEUE_DOWN):
        raise
    except Exception as e:  # a checker's own bug or a corrupt output: recorded, the node still completes
        log.warning("checks of %s failed on job=%s node=%s: %s", step.service.id, step.run.job_id, step.node.id, e)
        return [not_checked("checks", why_failed(e))]


def refinement(step: NodeStep, params: BaseModel, found: list[Check]) -> tuple[BaseModel, dict[str, Any], str] | None:
    """The params of one more run, the changes and why, when the service declares a fix for these checks."""
    refine = step.service.refine
    if refine is None:
        return None
    try:
        fix = refine(params, found)
        if fix is None:
            return None
        changes, why = fix
        return type(params).model_validate(params.model_dump() | changes), changes, why
    except (ValidationError, ValueError, TypeError, KeyError) as e:
        log.warning("refine of %s gave unusable params: %s", step.service.id, e)
        return None


async def checking(step: NodeStep, call_next: Handler) -> dict[str, Any]:
    """Run the node, then its checks; one refined re-run when a check misses and the service can fix it."""
    output = await call_next(step)
    if step.service.checks is None:
        return output
    params = step.params
    assert params is not None
    started = time.perf_counter()
    found = await measure(step, params, output)
    spent = time.perf_counter() - started
    refined: dict[str, Any] | None = None
    if (fix := refinement(step, params, found)) is not None:
        better, changes, why = fix
        await step.run.emit("log", {"node": step.node.id, "message": f"check: {why}; running it once more"})
        step.params = better
        try:
            again = await call_next(step)
        except (Cancelled, LostClaim, *QUEUE_DOWN):
            raise
        except Exception as e:  # the first result stands
            refined = {"why": why, "changes": changes, "failed": why_failed(e)}
        else:
            started = time.perf_counter()
            first, found, output = found, await measure(step, params, again), again
            spent += time.perf_counter() - started
            refined = {"why": why, "changes": changes, "first": [c.to_json() for c in first]}
        finally:
            step.params = params
    output = {**output, "checks": [c.to_json() for c in found], "checks_s": round(spent, 3)}
    if refined is not None:
        output["refined"] = refined
    await step.run.emit("log", {"node": step.node.id, "message": summary(step, output, found)})
    return output


def summary(step: NodeStep, output: dict[str, Any], found: list[Check]) -> str:
    """'checks: duration_s 2.7 s, words 0.82 ok; differs from the request: the video is 2.7 s, not 20 s'."""
    line = "checks: " + ", ".join(check_line(c) for c in found)
    doc = step.run.graph.to_json()
    for n in doc["nodes"]:
        if n["id"] == step.node.id:
            n["output"], n["status"] = output, "completed"
    differs = [f.message for f in compare(doc, only=step.node.id) if f.kind == "miss"]
    return line + (f"; differs from the request: {'; '.join(differs)}" if differs else "")
