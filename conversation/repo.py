"""Postgres reads and writes the API owns: conversations, messages, uploads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from spinbot.artifacts import ArtifactInfo


@dataclass(frozen=True, slots=True)
class ArtifactMeta:
    key: str
    owner: str
    content_type: str
    size: int
    sha256: str


def new_conversation_id() -> str:
    return "c_" + uuid.uuid4().hex[:20]


class Repo:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- conversations

    async def create_conversation(self, owner: str, title: str) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "INSERT INTO conversations (id, owner, title) VALUES ($1, $2, $3) RETURNING *",
            new_conversation_id(), owner, title[:200],
        )
        return dict(row)

    async def ensure_conversation(self, conversation_id: str, owner: str, title: str) -> dict[str, Any] | None:
        """A conversation under a caller-chosen id (an Open WebUI chat); None if another owner has it."""
        await self.pool.execute(
            "INSERT INTO conversations (id, owner, title) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            conversation_id, owner, title[:200],
        )
        return await self.get_conversation(conversation_id, owner)

    async def get_conversation(self, conversation_id: str, owner: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(
            "SELECT * FROM conversations WHERE id=$1 AND owner=$2", conversation_id, owner
        )
        return dict(row) if row else None

    async def list_conversations(
        self, owner: str, *, limit: int = 20, before: datetime | None = None
    ) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT c.*, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count"
            " FROM conversations c WHERE owner=$1 AND ($2::timestamptz IS NULL OR updated_at < $2)"
            " ORDER BY updated_at DESC, id DESC LIMIT $3",
            owner, before, limit,
        )
        return [dict(r) for r in rows]

    async def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        *,
        job_id: str | None = None,
        graph: dict[str, Any] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        message_id: int | None = None,
    ) -> dict[str, Any]:
        """A new message (under `message_id` when one was taken with new_message_id())."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO messages (id, conversation_id, role, content, job_id, graph, attachments, metadata)"
                " VALUES (coalesce($8, nextval(pg_get_serial_sequence('messages', 'id'))), $1, $2, $3, $4, $5, $6, $7)"
                " RETURNING *",
                conversation_id, role, content, job_id, graph, attachments or [], metadata or {}, message_id,
            )
            await conn.execute("UPDATE conversations SET updated_at=now() WHERE id=$1", conversation_id)
        return dict(row)

    async def update_message(
        self, message_id: int, content: str, *, metadata: dict[str, Any] | None = None
    ) -> None:
        await self.pool.execute(
            "UPDATE messages SET content=$2, metadata = metadata || $3::jsonb WHERE id=$1",
            message_id, content, metadata or {},
        )

    async def new_message_id(self) -> int:
        """An id for a message written later (add_message(message_id=...)): a claim can name it first."""
        return int(await self.pool.fetchval("SELECT nextval(pg_get_serial_sequence('messages', 'id'))"))

    async def message(self, message_id: int) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM messages WHERE id=$1", message_id)
        return dict(row) if row else None

    async def close_turn(self, message_id: int, content: str, status: str | None) -> bool:
        """The final answer of an open chat turn (conversation/turns.py); False when the turn was closed already
        (by another API process): a turn is answered once."""
        done = await self.pool.fetchval(
            "UPDATE messages SET content=$2, metadata = metadata || jsonb_build_object('status', $3::text,"
            " 'turn', 'done') WHERE id=$1 AND metadata->>'turn' = 'open' RETURNING id",
            message_id, content, status,
        )
        return done is not None

    async def messages(self, conversation_id: str, *, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM (SELECT * FROM messages WHERE conversation_id=$1 ORDER BY id DESC LIMIT $2) m"
            " ORDER BY id", conversation_id, limit,
        )
        return [dict(r) for r in rows]

    async def link_job(
        self, conversation_id: str, job_id: str, *, ask: str = "", running: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> int | None:
        """Attach a job started later (a confirmed plan) to the conversation's last plan message: `ask` (the
        review's question) in its text becomes `running`, `metadata` is merged in. Returns its id, or None."""
        mid = await self.pool.fetchval(
            "UPDATE messages SET job_id=$2, content=replace(content, $3, $4), metadata = metadata || $5::jsonb"
            " WHERE id = (SELECT id FROM messages WHERE conversation_id=$1"
            " AND role='assistant' AND graph IS NOT NULL AND job_id IS NULL ORDER BY id DESC LIMIT 1) RETURNING id",
            conversation_id, job_id, ask, running, metadata or {},
        )
        return int(mid) if mid is not None else None

    # -- uploads and artifacts

    async def add_upload(self, owner: str, name: str, info: ArtifactInfo) -> None:
        await self.pool.execute(
            "INSERT INTO uploads (key, owner, name, content_type, size, sha256) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (key) DO NOTHING",
            info.key, owner, name, info.content_type, info.size, info.sha256,
        )

    async def artifact(self, key: str) -> ArtifactMeta | None:
        """An artifact or upload with its owner; recorded metadata, so a range request never re-hashes."""
        row = await self.pool.fetchrow(
            "SELECT a.key, j.owner, a.content_type, a.size, a.sha256 FROM artifacts a JOIN jobs j ON j.id=a.job_id"
            " WHERE a.key=$1 UNION ALL"
            " SELECT key, owner, content_type, size, sha256 FROM uploads WHERE key=$1 LIMIT 1",
            key,
        )
        return ArtifactMeta(**dict(row)) if row else None
