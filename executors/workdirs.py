"""Private, empty work directories for nodes; emptied ones are reused (no filesystem churn per node)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path


class Workdirs:
    """A pool of at most `keep` empty directories under `root`."""

    def __init__(self, root: Path, keep: int = 16) -> None:
        self.root = root
        self.keep = keep
        self._free: list[Path] = []

    def acquire(self) -> Path:
        if self._free:
            return self._free.pop()
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="node-", dir=self.root))

    async def release(self, path: Path) -> None:
        """An empty directory goes back to the pool; anything a task left behind is removed with it."""
        with os.scandir(path) as it:
            empty = next(it, None) is None
        if empty and len(self._free) < self.keep:
            self._free.append(path)
        else:
            await asyncio.to_thread(shutil.rmtree, path, True)

    def clear(self) -> None:
        for path in self._free:
            shutil.rmtree(path, ignore_errors=True)
        self._free.clear()
