"""gpu.info: the GPU plane's device, its memory and what is in use, with the plane's live manifest."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from executors.gpu import device
from executors.gpu.common import in_thread
from spinbot.errors import PermanentError
from spinbot.manifest import RetryPolicy
from spinbot.registry import service
from spinbot.task import TaskContext


class InfoParams(BaseModel):
    pass


def usage() -> dict[str, Any]:
    """The device with what torch has allocated on it (CUDA), or this process's resident memory (CPU)."""
    import resource

    import torch

    info = device.detect()
    if info["kind"] == "cuda":
        info["allocated_mb"] = torch.cuda.memory_allocated() // 2**20
        info["reserved_mb"] = torch.cuda.memory_reserved() // 2**20
    info["used_mb"] = info["total_mb"] - info["free_mb"]
    info["process_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    info["threads"] = torch.get_num_threads()
    return info


@service(
    "gpu.info",
    planes=["gpu"],
    description="Reports the GPU plane's device (CUDA or CPU), its total/free/used memory and the plane's manifest.",
    params=InfoParams,
    outputs={"info": "json"},
    gpu=False,
    duration_s=0.2,
    memory_mb=0,
    cacheable=False,  # reports the device as it is now
    retry=RetryPolicy(max_attempts=2, backoff_s=0.5),
    timeout_s=60,
)
async def info(ctx: TaskContext, p: InfoParams) -> dict[str, Any]:
    if ctx.plane_manifest is None:
        raise PermanentError("gpu.info reports its executor's manifest: run it on a GPU executor")
    dev = await in_thread(usage)
    manifest = ctx.plane_manifest(device=dev)
    return {"info": {"device": dev, "manifest": manifest.model_dump(mode="json", by_alias=True, exclude_none=True)}}
