"""Cursor paging for the list routes: newest first; a page's `next` is the `before` of the following one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator

from conversation.views import iso


def _utc(value: datetime | None) -> datetime | None:
    """The cursor in UTC (a time without an offset is UTC); one whose offset takes it outside the years
    1-9999 is a 422, not a database error."""
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is outside the years 1-9999 once its offset is applied") from None


Limit = Annotated[int, Query(ge=1, le=100)]
Before = Annotated[datetime | None, AfterValidator(_utc), Query(description="the `next` cursor of the previous page")]


def page(items: list[Any], rows: Sequence[Mapping[str, Any]], limit: int, cursor: str) -> dict[str, Any]:
    """{"items": items, "next": ISO time of the last row's `cursor` column, or None when no page follows}."""
    return {"items": items, "next": iso(rows[-1][cursor]) if len(rows) == limit else None}
