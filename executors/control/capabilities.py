"""capabilities.get_manifest: the control plane's manifest merged with the GPU plane's (from gpu.info)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from spinbot.errors import PermanentError
from spinbot.manifest import PlaneManifest, RetryPolicy, merge
from spinbot.registry import service
from spinbot.task import TaskContext


class ManifestParams(BaseModel):
    gpu: dict[str, Any] | None = Field(default=None, description="gpu.info's info: the GPU plane's device and manifest")


@service(
    "capabilities.get_manifest",
    planes=["control"],
    description=(
        "Reports what this Spinbot can do: merges the GPU plane's manifest (from gpu.info, run first) with the "
        "control plane's into one manifest of services, planes and devices."
    ),
    params=ManifestParams,
    inputs={"gpu": "json"},
    outputs={"manifest": "json"},
    duration_s=0.1,
    memory_mb=0,
    cacheable=False,  # reports what runs now
    retry=RetryPolicy(max_attempts=2, backoff_s=0.5),
    timeout_s=60,
)
async def get_manifest(ctx: TaskContext, p: ManifestParams) -> dict[str, Any]:
    if ctx.plane_manifest is None:
        raise PermanentError("capabilities.get_manifest reports its executor's manifest: run it on a control executor")
    planes = []
    if p.gpu is not None:
        try:
            gpu = PlaneManifest.model_validate(p.gpu.get("manifest"))
        except ValidationError as e:
            raise PermanentError(f"gpu is not gpu.info's output: {e.errors()[0]['msg']}") from e
        if gpu.device is None and isinstance(p.gpu.get("device"), dict):
            gpu = gpu.model_copy(update={"device": p.gpu["device"]})
        planes.append(gpu)
    planes.append(await asyncio.to_thread(ctx.plane_manifest))  # probes may wait on the network
    merged = merge(planes).to_json()
    available = [s["id"] for s in merged["services"].values() if s["available"] and not s["hidden"]]
    await ctx.log(f"manifest: {len(available)} services available on {', '.join(merged['planes'])}")
    return {"manifest": merged}
