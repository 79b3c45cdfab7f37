"""Conversation history for the web UI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from web.deps import OwnerDep, ServicesDep
from web.problems import not_found
from web.views import conversation_view, iso, message_view

router = APIRouter(prefix="/api/conversations", tags=["chat"])


@router.get("", summary="The caller's conversations, most recently active first")
async def list_conversations(
    services: ServicesDep, owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
    before: Annotated[datetime | None, Query(description="the `next` cursor of the previous page")] = None,
) -> dict[str, Any]:
    rows = await services.repo.list_conversations(owner, limit=limit, before=before)
    nxt = iso(rows[-1]["updated_at"]) if len(rows) == limit else None
    return {"items": [conversation_view(r) for r in rows], "next": nxt}


@router.get("/{conversation_id}", summary="A conversation with its messages")
async def get_conversation(services: ServicesDep, owner: OwnerDep, conversation_id: str) -> dict[str, Any]:
    conv = await services.repo.get_conversation(conversation_id, owner)
    if conv is None:
        raise not_found("conversation", conversation_id)
    messages = await services.repo.messages(conversation_id)
    return conversation_view(conv) | {"messages": [message_view(m, services.links) for m in messages]}
