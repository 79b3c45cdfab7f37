"""The queue's Lua scripts, read from the package's lua/ directory and registered on a client."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript


@cache
def source(name: str) -> str:
    """The text of lua/<name>.lua (shipped as package data)."""
    return resources.files("spinbot.queue").joinpath("lua", f"{name}.lua").read_text()


@dataclass(frozen=True)
class Scripts:
    """Every script of the protocol, registered once per client (EVALSHA, loaded on first use)."""

    commit: AsyncScript  # a fenced write by the lease holder: fields, events, hand-off, ack
    submit: AsyncScript  # a new job: record, first entry, event, indexes
    cancel_idle: AsyncScript  # cancel a job whose entry nobody holds
    reissue: AsyncScript  # re-issue a job whose entry is dead (checked again atomically)
    heartbeat: AsyncScript  # keep own claims alive; report the ones no longer ours
    mark_synced: AsyncScript  # the last event copied to Postgres
    leave: AsyncScript  # remove consumers from the group, each only while it holds no pending entry

    @classmethod
    def register(cls, redis: aioredis.Redis) -> Scripts:
        return cls(**{name: redis.register_script(source(name)) for name in cls.__dataclass_fields__})
