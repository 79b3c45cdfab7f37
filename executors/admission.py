"""GPU admission: nodes are admitted by slots and by declared memory against the device's memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Admission:
    """At most `slots` GPU nodes at once, and (with `memory_mb`) their declared memory within the device's."""

    def __init__(self, slots: int, memory_mb: int | None) -> None:
        self.slots = max(1, slots)
        self.memory_mb = memory_mb
        self.used_slots = 0
        self.used_mb = 0
        self._cond = asyncio.Condition()

    def impossible(self, mb: int) -> str | None:
        """Why a node declaring `mb` MB can never run here, or None."""
        if self.memory_mb is not None and mb > self.memory_mb:
            return f"needs {mb} MB of device memory, this executor has {self.memory_mb} MB"
        return None

    def _fits(self, mb: int) -> bool:
        if self.used_slots >= self.slots:
            return False
        return self.memory_mb is None or self.used_slots == 0 or self.used_mb + mb <= self.memory_mb

    @contextlib.asynccontextmanager
    async def admit(self, mb: int) -> AsyncIterator[None]:
        """Hold a slot and `mb` MB for the block; waits until they are free."""
        async with self._cond:
            await self._cond.wait_for(lambda: self._fits(mb))
            self.used_slots += 1
            self.used_mb += mb
        try:
            yield
        finally:
            async with self._cond:
                self.used_slots -= 1
                self.used_mb -= mb
                self._cond.notify_all()
