"""Cursor paging for the list routes: newest first; a page's `next` is the `before` of the following one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query

from web.views import iso

Limit = Annotated[int, Query(ge=1, le=100)]
Before = Annotated[datetime | None, Query(description="the `next` cursor of the previous page")]


def page(items: list[Any], rows: Sequence[Mapping[str, Any]], limit: int, cursor: str) -> dict[str, Any]:
    """{"items": items, "next": ISO time of the last row's `cursor` column, or None when no page follows}."""
    return {"items": items, "next": iso(rows[-1][cursor]) if len(rows) == limit else None}
