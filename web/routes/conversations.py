"""Conversation history for the web UI."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from conversation.views import conversation_view, message_view
from spinbot.errors import not_found
from web.deps import OwnerDep, ServicesDep
from web.paging import Before, Limit, page

router = APIRouter(prefix="/api/conversations", tags=["chat"])


@router.get("", summary="The caller's conversations, most recently active first")
async def list_conversations(
    services: ServicesDep, owner: OwnerDep,
    limit: Limit = 30,
    before: Before = None,
) -> dict[str, Any]:
    rows = await services.repo.list_conversations(owner, limit=limit, before=before)
    return page([conversation_view(r) for r in rows], rows, limit, "updated_at")


@router.get("/{conversation_id}", summary="A conversation with its messages")
async def get_conversation(services: ServicesDep, owner: OwnerDep, conversation_id: str) -> dict[str, Any]:
    conv = await services.repo.get_conversation(conversation_id, owner)
    if conv is None:
        raise not_found("conversation", conversation_id)
    messages = await services.repo.messages(conversation_id)
    return conversation_view(conv) | {"messages": [message_view(m, services.links) for m in messages]}
