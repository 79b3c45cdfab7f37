"""Diagnostic services on both planes: real, cheap work for health checks, tests and benchmarks."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, Field

from spinbot.errors import PermanentError, TransientError
from spinbot.graph import Plane
from spinbot.manifest import RetryPolicy
from spinbot.registry import service
from spinbot.task import TaskContext

BOTH: tuple[Plane, ...] = ("control", "gpu")


class EchoParams(BaseModel):
    text: str = Field(default="", max_length=100_000, description="returned as the output `text`")
    data: Any = Field(default=None, description="any JSON, returned as the output `data`")


@service(
    "diag.echo",
    planes=BOTH,
    description="Diagnostic: returns its input unchanged (text and data).",
    params=EchoParams,
    inputs={"text": "text", "data": "any"},
    outputs={"text": "text", "data": "any"},
    duration_s=0.001,
    hidden=True,
    cacheable=False,  # diagnostics run every time
    retry=RetryPolicy(max_attempts=1),
    timeout_s=10,
)
async def echo(ctx: TaskContext, p: EchoParams) -> dict[str, Any]:
    return {"text": p.text, "data": p.data}


class WaitParams(BaseModel):
    seconds: float = Field(default=1.0, ge=0, le=3600)
    steps: int = Field(default=10, ge=1, le=10_000, description="progress reports over the wait")
    text: str = Field(default="", max_length=10_000)


@service(
    "diag.wait",
    planes=BOTH,
    description="Diagnostic: waits `seconds`, reporting progress in `steps`; cancellable.",
    params=WaitParams,
    inputs={"text": "text"},
    outputs={"text": "text", "waited_s": "number"},
    duration_s=1.0,
    hidden=True,
    cacheable=False,  # diagnostics run every time
    retry=RetryPolicy(max_attempts=1),
    timeout_s=3600,
)
async def wait(ctx: TaskContext, p: WaitParams) -> dict[str, Any]:
    step = p.seconds / p.steps
    for i in range(p.steps):
        try:
            await asyncio.wait_for(ctx.cancel.wait(), timeout=step)
        except TimeoutError:
            await ctx.progress((i + 1) / p.steps, f"waited {step * (i + 1):.2f}/{p.seconds:.2f} s")
            continue
        ctx.check_cancelled()
    return {"text": p.text, "waited_s": p.seconds}


class FailParams(BaseModel):
    mode: Literal["transient", "permanent", "oserror"] = Field(
        default="permanent", description="oserror: raise a plain OSError, as a file that does not decode does")
    times: int = Field(default=1, ge=0, le=100, description="transient mode: fail this many attempts")
    message: str = Field(default="diag.fail failed on purpose", max_length=1000)


@service(
    "diag.fail",
    planes=BOTH,
    description="Diagnostic: fails transiently for `times` attempts then succeeds, or fails permanently.",
    params=FailParams,
    outputs={"attempt": "number"},
    duration_s=0.001,
    hidden=True,
    cacheable=False,  # diagnostics run every time
    retry=RetryPolicy(max_attempts=3, backoff_s=0.05),
    timeout_s=10,
)
async def fail(ctx: TaskContext, p: FailParams) -> dict[str, Any]:
    if p.mode == "permanent":
        raise PermanentError(p.message)
    if p.mode == "oserror":
        raise OSError(p.message)
    if ctx.attempt <= p.times:
        raise TransientError(f"{p.message} (attempt {ctx.attempt} of {p.times} failing)")
    return {"attempt": ctx.attempt}
