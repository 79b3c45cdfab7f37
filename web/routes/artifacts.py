"""Artifact downloads with HTTP range requests (video seeking), for their owner or a signed link."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from conversation.auth import match_key
from conversation.repo import ArtifactMeta
from spinbot.errors import Problem, SpinbotError, not_found
from web.conditional import none_match, range_applies
from web.deps import ServicesDep, bearer, unauthorized

router = APIRouter(prefix="/api/artifacts", tags=["artifacts"])

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single byte range; None for the whole file; 416 if unsatisfiable."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # a malformed or multi-range header is ignored (RFC 9110 allows serving it whole)
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if start >= size or (last and int(last) < start):
            raise unsatisfiable(size)
        return start, end
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise unsatisfiable(size)
    return max(0, size - suffix), size - 1


def unsatisfiable(size: int) -> Problem:
    return Problem("range_not_satisfiable", f"the range is outside the artifact ({size} bytes)",
                   headers={"Content-Range": f"bytes */{size}"}, hint="ask for bytes within the artifact's size")


@router.get("/{key:path}", summary="Download an artifact (Range, If-Range, If-None-Match)", response_class=Response)
async def download(
    request: Request,
    services: ServicesDep,
    key: str,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    exp: Annotated[str | None, Query(description="signed link: expiry (unix seconds)")] = None,
    sig: Annotated[str | None, Query(description="signed link: signature")] = None,
    api_key: Annotated[str | None, Query(description="an API key, for media elements that cannot send headers")] = None,
) -> Response:
    meta = await services.repo.artifact(key)
    if not services.links.verify(key, exp, sig):
        credentials: HTTPAuthorizationCredentials | None = await bearer(request)
        presented = credentials.credentials if credentials else api_key
        owner = match_key(services.settings, presented)
        if owner is None:
            raise unauthorized()
        if meta is None or meta.owner != owner:
            raise not_found("artifact", key)
    elif meta is None:
        raise not_found("artifact", key)
    return await _serve(services, meta, range_header, if_range, if_none_match)


def content_disposition(name: str) -> str:
    """`inline` with the file's name: an ASCII fallback, and the name itself as RFC 8187 `filename*`."""
    fallback = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_").replace("\\", "_")
    if fallback == name:
        return f'inline; filename="{name}"'
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def _serve(services: ServicesDep, meta: ArtifactMeta, range_header: str | None, if_range: str | None,
                 if_none_match: str | None) -> Response:
    size = meta.size
    etag = f'"{meta.sha256}"' if meta.sha256 else ""
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": content_disposition(meta.key.rsplit("/", 1)[-1]),
    }
    headers = {k: v for k, v in headers.items() if v}
    if none_match(if_none_match, etag):  # RFC 9110 13.2.2: If-None-Match is evaluated before Range
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Disposition"})
    rng = parse_range(range_header, size) if range_applies(if_range, etag) else None
    start, end = rng if rng else (0, size - 1)
    status = 206 if rng else 200
    if rng:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end - start + 1))
    if size == 0:
        return Response(status_code=status, headers=headers, media_type=meta.content_type)
    try:
        stream = services.artifacts.stream(meta.key, start, end)
        first = await anext(stream, b"")  # a missing file fails here, before the status line is sent
    except SpinbotError as e:
        raise Problem("artifact_missing", f"artifact {meta.key} is recorded but its data is gone: {e.message}",
                      hint="re-run the job that produced it") from None

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in stream:
            yield chunk

    return StreamingResponse(body(), status_code=status, headers=headers, media_type=meta.content_type)
