"""What a running task sees: its params, progress reporting, cancellation, artifacts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from spinbot.artifacts import ArtifactStore
from spinbot.constants import artifact_key
from spinbot.errors import Cancelled
from spinbot.manifest import PlaneManifest
from spinbot.settings import Settings

log = logging.getLogger(__name__)

#: emit(event_type, data): appends to the job's event stream.
Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


class TaskContext:
    def __init__(
        self,
        *,
        job_id: str,
        node_id: str,
        attempt: int,
        settings: Settings,
        store: ArtifactStore,
        emit: Emit,
        workdir: Path,
        cancel: asyncio.Event | None = None,
        graph_context: dict[str, Any] | None = None,
        device: dict[str, Any] | None = None,
        plane_manifest: Callable[..., PlaneManifest] | None = None,
    ) -> None:
        """`plane_manifest(**live)`: the manifest of the plane this node runs on, its services probed now (the
        executor's registry, spinbot.registry.Registry.manifest with its settings); None outside an executor."""
        self.job_id = job_id
        self.node_id = node_id
        self.attempt = attempt
        self.settings = settings
        self.store = store
        self.workdir = workdir
        self.cancel = cancel or asyncio.Event()
        self.graph_context = graph_context or {}
        self.device = device or {}
        self.plane_manifest = plane_manifest
        self._emit = emit
        self._loop = asyncio.get_running_loop()
        self._last_progress = 0.0

    # -- progress and logs

    async def progress(self, fraction: float, message: str = "") -> None:
        self._last_progress = time.monotonic()
        await self._emit(
            "progress", {"node": self.node_id, "progress": max(0.0, min(1.0, fraction)), "message": message}
        )

    def progress_threadsafe(self, fraction: float, message: str = "") -> None:
        """progress() for code running in a worker thread (torch, ffmpeg)."""
        asyncio.run_coroutine_threadsafe(self.progress(fraction, message), self._loop)

    async def log(self, message: str) -> None:
        log.info("job=%s node=%s %s", self.job_id, self.node_id, message)
        await self._emit("log", {"node": self.node_id, "message": message})

    # -- cancellation

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise Cancelled if the job was cancelled; call between batches of work."""
        if self.cancel.is_set():
            raise Cancelled(f"job {self.job_id} was cancelled")

    # -- artifacts

    async def put_artifact(self, name: str, path: Path, content_type: str | None = None) -> dict[str, Any]:
        """Store a file under this node's deterministic key; returns the output descriptor."""
        info = await self.store.put_file(artifact_key(self.job_id, self.node_id, name), path, content_type)
        desc = info.descriptor()
        await self._emit("artifact", {"node": self.node_id, "name": name, **desc})
        return desc
