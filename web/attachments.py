"""Attachments (images, audio) from data URLs or multipart uploads become artifacts the graph can use."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from spinbot.constants import upload_key
from web.deps import Services
from web.limits import MB, too_large
from web.problems import Problem, not_found

KINDS = {"image": "image", "audio": "audio", "video": "video"}
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_UPLOAD_ID = re.compile(r"^uploads/[^/]+/(a[0-9a-f]{12})/")


class AttachmentIn(BaseModel):
    """A file for the planner: a data URL (`data`), or the `key` of an earlier upload."""

    name: str | None = Field(default=None, max_length=200)
    content_type: str | None = Field(default=None, max_length=128)
    data: str | None = Field(default=None, description="data:<type>;base64,<payload>")
    key: str | None = Field(default=None, max_length=512, description="uploads/... from an earlier upload")


def kind_of(content_type: str) -> str:
    kind = KINDS.get(content_type.split("/", 1)[0].lower())
    if kind is None:
        raise Problem(415, f"attachments of type {content_type} are not supported", code="unsupported_attachment",
                      hint="attach images (image/*) or audio (audio/*)")
    return kind


def safe_name(name: str | None, content_type: str) -> str:
    import mimetypes

    stem = _SAFE.sub("_", (name or "").strip()).strip("._")[:100]
    if not stem:
        stem = "attachment" + (mimetypes.guess_extension(content_type) or "")
    return stem


def decode_data_url(url: str, limit: int) -> tuple[str, bytes]:
    m = _DATA_URL.match(url[:300])
    if not m:
        raise Problem(422, "an attachment's data is not a data: URL", code="invalid_attachment",
                      hint="send data:<type>;base64,<payload> (or upload the file as multipart/form-data)")
    payload = url[m.end():]
    if len(payload) * 3 // 4 > limit + 3:
        raise too_large("an attachment", len(payload) * 3 // 4, limit)
    try:
        raw = base64.b64decode(payload, validate=True) if m.group("b64") else payload.encode()
    except (binascii.Error, ValueError):
        raise Problem(422, "an attachment's base64 payload is corrupt", code="invalid_attachment",
                      hint="re-encode the file as base64") from None
    return (m.group("type") or "application/octet-stream").lower(), raw


def _decodes(kind: str, path: Path) -> str | None:
    """None when the file decodes as its kind; else why not (read by content, never by name or type)."""
    if kind == "image":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            return str(e) or type(e).__name__
        return None
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.audio if kind == "audio" else container.streams.video
            if not streams:
                return f"it holds no {kind} stream"
            next(container.decode(streams[0]))
    except (av.FFmpegError, OSError, StopIteration, ValueError) as e:
        return str(e) or "it holds no decodable frame"
    return None


async def check_content(kind: str, path: Path, name: str) -> None:
    """415 unless the file really is the kind its type claims (an image decodes, audio decodes)."""
    why = await asyncio.to_thread(_decodes, kind, path)
    if why is not None:
        why = why.replace(f"'{path}'", "").replace(str(path), "").replace("  ", " ").strip()  # no server paths
        raise Problem(415, f"{name} is not {'an' if kind[0] in 'aeiou' else 'a'} {kind} ({why[:200]})",
                      code="unsupported_attachment", field=name,
                      hint=f"attach a real {kind} file (images: PNG, JPEG, WebP; audio: WAV, MP3, OGG)")


async def _save(services: Services, owner: str, name: str | None, content_type: str, path: Path) -> dict[str, Any]:
    kind = kind_of(content_type)
    await check_content(kind, path, safe_name(name, content_type))
    att_id = "a" + uuid.uuid4().hex[:12]
    fname = safe_name(name, content_type)
    key = upload_key(owner, att_id, fname)
    info = await services.artifacts.put_file(key, path, content_type)
    await services.repo.add_upload(owner, fname, info)
    return {"id": att_id, "kind": kind, "key": key, "name": fname, "contentType": content_type, "size": info.size}


def _tmpdir(services: Services) -> Path:
    d = services.settings.data_dir / "tmp"
    d.mkdir(parents=True, exist_ok=True)
    return d


async def store_attachments(services: Services, owner: str, items: list[AttachmentIn]) -> list[dict[str, Any]]:
    """Each attachment stored as uploads/{owner}/{id}/{name}; returns graph-context attachments."""
    limit = int(services.settings.max_attachment_mb * MB)
    out: list[dict[str, Any]] = []
    for item in items:
        if item.key:
            existing = await _existing(services, owner, item)
            if all(a["key"] != existing["key"] for a in out):  # one upload named twice is one attachment
                out.append(existing)
            continue
        if not item.data:
            raise Problem(422, "an attachment needs `data` (a data: URL) or the `key` of an upload",
                          code="invalid_attachment", hint="send data:<type>;base64,<payload>")
        ctype, raw = decode_data_url(item.data, limit)
        if len(raw) > limit:
            raise too_large("an attachment", len(raw), limit)
        ctype = item.content_type or ctype
        with tempfile.NamedTemporaryFile(dir=_tmpdir(services)) as f:
            f.write(raw)
            f.flush()
            out.append(await _save(services, owner, item.name, ctype, Path(f.name)))
    return out


async def _existing(services: Services, owner: str, item: AttachmentIn) -> dict[str, Any]:
    assert item.key
    meta = await services.repo.artifact(item.key)
    if meta is None or meta.owner != owner:
        raise not_found("attachment", item.key)
    name = item.name or item.key.rsplit("/", 1)[-1]
    # An upload keeps its id (uploads/{owner}/{id}/{name}): what POST /api/uploads answered can name it.
    upload = _UPLOAD_ID.match(meta.key)
    att_id = upload.group(1) if upload else "a" + uuid.uuid4().hex[:12]
    return {"id": att_id, "kind": kind_of(meta.content_type), "key": meta.key,
            "name": name[:200], "contentType": meta.content_type, "size": meta.size}


async def store_uploads(services: Services, owner: str, files: Sequence[UploadFile]) -> list[dict[str, Any]]:
    """Multipart files, streamed to disk (never whole in memory) with the attachment size limit."""
    limit = int(services.settings.max_attachment_mb * MB)
    out = []
    for upload in files:
        ctype = (upload.content_type or "application/octet-stream").lower()
        kind_of(ctype)
        with tempfile.NamedTemporaryFile(dir=_tmpdir(services)) as f:
            size = 0
            while chunk := await upload.read(1024 * 1024):
                size += len(chunk)
                if size > limit:  # its whole size, not where reading stopped (the body is read already)
                    while more := await upload.read(1024 * 1024):
                        size += len(more)
                    raise too_large(upload.filename or "an attachment", size, limit)
                f.write(chunk)
            f.flush()
            out.append(await _save(services, owner, upload.filename, ctype, Path(f.name)))
    return out
