"""What every GPU task shares: artifact inputs, scratch space, threaded work with progress."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
from pydantic import Field

from executors.gpu import device
from spinbot.errors import PermanentError, TransientError
from spinbot.task import TaskContext

T = TypeVar("T")

#: An artifact input after reference resolution: a descriptor {key, contentType, size, sha256} or a key.
ArtifactInput = Annotated[
    dict[str, Any] | str, Field(description="an artifact: a reference to an upstream output or attachment")
]


@contextlib.asynccontextmanager
async def scratch(ctx: TaskContext) -> AsyncIterator[Path]:
    """A private temporary directory under the task's workdir, removed afterwards."""
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{ctx.node_id}-", dir=ctx.workdir))
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)


async def fetch(ctx: TaskContext, ref: dict[str, Any] | str, dest_dir: Path, name: str) -> Path:
    """Download an input artifact into dest_dir under `name` (keeps the key's suffix)."""
    key = ref if isinstance(ref, str) else ref.get("key")
    if not isinstance(key, str) or not key:
        raise PermanentError(f"input {name!r} is not an artifact reference: {ref!r}")
    suffix = Path(key).suffix
    return await ctx.store.get_file(key, dest_dir / f"{name}{suffix}")


class Reporter:
    """Thread-side progress: forwards to ctx.progress_threadsafe at most every `every_s` seconds."""

    def __init__(self, ctx: TaskContext, every_s: float = 0.5) -> None:
        self.ctx = ctx
        self.every_s = every_s
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < self.every_s:
                return
            self._last = now
        self.ctx.progress_threadsafe(fraction, message)

    def check(self) -> None:
        """Cancellation point between batches."""
        self.ctx.check_cancelled()


class Batcher:
    """Batch sizes that keep each batch near `target_s` seconds, so progress reports and cancellation
    checks stay frequent on a slow or busy machine and batches stay large on a fast one."""

    def __init__(self, most: int, target_s: float = 0.6) -> None:
        self.most = max(1, most)
        self.size = 1
        self.target_s = target_s
        self._started = time.monotonic()

    def __call__(self) -> int:
        self._started = time.monotonic()
        return self.size

    def done(self, n: int) -> None:
        """Record that a batch of n items took the time since the last call."""
        per_item = max(1e-4, (time.monotonic() - self._started) / max(1, n))
        want = int(self.target_s / per_item)
        self.size = max(1, min(self.most, want, self.size * 2))


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work that allocates no device memory (the checks' measurements: numpy, PyAV, PocketSphinx)
    off the event loop, in asyncio's default thread pool."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking torch/ffmpeg work off the event loop; device memory is freed afterwards (which collects
    garbage: 0.3 s once torch is loaded, 2 cores at load 6). Work that allocates no device memory uses
    off_loop()."""
    try:
        return await off_loop(fn, *args, **kwargs)
    finally:
        if "torch" in sys.modules:  # nothing to free if the task never touched torch
            await asyncio.to_thread(device.free_memory)


async def stream_to_file(
    request: contextlib.AbstractAsyncContextManager[httpx.Response], dest: Path, what: str
) -> None:
    """Write the body of `request` (an httpx `client.stream(...)`) to `dest`. `what` names the server in errors:
    TransientError when it is unreachable or answers 5xx (a retry may pass), PermanentError for any other
    status but 2xx (the request is wrong)."""
    try:
        async with request as r:
            if r.status_code >= 500:
                raise TransientError(f"{what} answered {r.status_code}")
            if not r.is_success:
                raise PermanentError(f"{what} refused: {r.status_code} {(await r.aread())[:300]!r}")
            with dest.open("wb") as f:
                async for chunk in r.aiter_bytes():
                    f.write(chunk)
    except httpx.TransportError as e:
        raise TransientError(f"{what} unreachable: {e}") from e
