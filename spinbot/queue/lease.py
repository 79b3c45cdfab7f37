"""An executor's hold on one job through the stream entry it claimed; every write is fenced by it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from spinbot import constants as C
from spinbot.errors import LostClaim
from spinbot.queue.interface import QueueCore
from spinbot.queue.record import as_str, dumps, flat

#: commit modes: update (fields and events only), handoff (+ XADD to the target, ack here),
#: finish (+ ack, the job leaves the active set), dead (+ XADD to the dead-letter stream, ack)
MODES = ("update", "handoff", "finish", "dead")


def _str(value: Any) -> str:
    """A field value as Redis stores it (numbers as their repr, as redis-py would send them)."""
    return value if isinstance(value, str) else repr(value)


@dataclass
class Lease:
    """The claim on `entry` of `stream` by `consumer`; `commit` writes only while the claim holds."""

    queue: QueueCore
    job_id: str
    stream: str
    entry: str
    consumer: str
    deliveries: int = 1
    released: bool = False  # handed off, finished or dead-lettered: the entry is acked and gone
    releasing: bool = False  # a hand-off/finish commit is in flight: the entry may vanish by our own hand
    cancel_requested: bool = False  # the record's cancel flag as of the last commit

    async def commit(
        self,
        fields: dict[str, Any] | None = None,
        events: list[tuple[str, dict[str, Any]]] | None = None,
        *,
        mode: str = "update",
        target: str | None = None,
        target_fields: dict[str, Any] | None = None,
        clear_nodes: bool = False,
    ) -> tuple[str, list[str]]:
        """Apply record fields + events (+ hand-off/ack, see MODES) atomically if this lease still owns
        the job. Returns (the new entry's id or "", the event ids); raises LostClaim otherwise.
        `clear_nodes` drops the record's node-state and delta fields first (a finish rewrites `graph`)."""
        fields = dict(fields or {})
        fields.setdefault("updated", repr(time.time()))
        now = round(time.time(), 6)
        payload = [[_str(x) for x in flat(fields)],
                   [x for typ, data in events or [] for x in (typ, dumps({**data, "ts": now}))],
                   [_str(x) for x in flat(target_fields or {})]]
        args: list[Any] = [C.GROUP, self.consumer, self.entry, mode, C.EVENTS_MAXLEN, "1" if clear_nodes else "0",
                           dumps(payload)]
        keys = [self.stream, C.job_key(self.job_id), C.job_events_key(self.job_id), target or self.stream,
                C.ACTIVE_JOBS]
        if mode != "update":
            self.releasing = True
        try:
            out = await self.queue.scripts.commit(keys=keys, args=args)
        finally:
            self.releasing = False
        if not out or int(out[0]) != 1:
            raise LostClaim(f"job {self.job_id}: entry {self.entry} on {self.stream} is no longer ours")
        if mode != "update":
            self.released = True
        self.cancel_requested = as_str(out[2]) == "1"
        return as_str(out[1]), [as_str(x) for x in out[3:]]
