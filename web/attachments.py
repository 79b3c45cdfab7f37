"""Attachments (images, audio, video, text) from data URLs or multipart uploads become artifacts the graph can use."""

from __future__ import annotations

import asyncio
import base64
import binascii
import mimetypes
import re
import tempfile
import unicodedata
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from conversation.services import Services
from spinbot.constants import upload_key
from spinbot.errors import Problem, not_found
from spinbot.units import kind_text
from web.decode import HINT, Decoded, Refused, decode
from web.limits import MB, too_large

KINDS = {"image": "image", "audio": "audio", "video": "video", "text": "text"}
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I)
_UPLOAD_ID = re.compile(r"^uploads/[^/]+/(a[0-9a-f]{12})/")
#: a stored name's length in UTF-8 bytes (file systems allow 255; CJK letters take 3 bytes each)
MAX_NAME_BYTES = 120


class AttachmentIn(BaseModel):
    """A file for the planner: a data URL (`data`), or the `key` of an earlier upload."""

    name: str | None = Field(default=None, max_length=200)
    content_type: str | None = Field(default=None, max_length=128)
    data: str | None = Field(default=None, description="data:<type>;base64,<payload>")
    key: str | None = Field(default=None, max_length=512, description="uploads/... from an earlier upload")


def kind_of(content_type: str) -> str:
    kind = KINDS.get(content_type.split("/", 1)[0].lower())
    if kind is None:
        raise Problem("unsupported_attachment", f"{kind_text(content_type)} cannot be attached")
    return kind


def safe_name(name: str | None, content_type: str) -> str:
    """A stored file's name: the client's name (NFC) with letters, marks and digits of any script kept,
    anything else (separators, spaces, quotes, controls) as `_`, at most MAX_NAME_BYTES of UTF-8, and an
    extension that fits `content_type` (the client's when it does, else the type's own)."""
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    kept = "".join(c if unicodedata.category(c)[0] in "LMN" or c in "._-" else "_" for c in base)
    stem, dot, ext = re.sub(r"_{2,}", "_", kept).rpartition(".")
    if not dot:
        stem, ext = ext, ""
    subtype = content_type.split("/")[-1].removeprefix("x-")
    fits = mimetypes.guess_all_extensions(content_type, strict=False) or ([f".{subtype}"] if subtype.isalnum() else [])
    ext = ext.lower() if f".{ext.lower()}" in fits or not fits else fits[0][1:]
    suffix = f".{ext}" if ext else ""
    room = MAX_NAME_BYTES - len(suffix.encode())
    stem = stem.encode()[:room].decode("utf-8", "ignore").strip("._") or "attachment"
    return stem + suffix


def decode_data_url(url: str, limit: int) -> tuple[str, bytes]:
    m = _DATA_URL.match(url[:300])
    if not m:
        raise Problem("invalid_attachment", "an attachment's data is not a data: URL",
                      hint="send data:<type>;base64,<payload> (or upload the file as multipart/form-data)")
    payload = url[m.end():]
    if len(payload) * 3 // 4 > limit + 3:
        raise too_large("an attachment", len(payload) * 3 // 4, limit)
    try:
        raw = base64.b64decode(payload, validate=True) if m.group("b64") else payload.encode()
    except (binascii.Error, ValueError):
        raise Problem("invalid_attachment", "an attachment's base64 payload is corrupt",
                      hint="re-encode the file as base64") from None
    return (m.group("type") or "application/octet-stream").lower(), raw


async def check_content(services: Services, path: Path, name: str | None, declared: str) -> Decoded:
    """What the file is, read from its content (web.decode): 415 when it is no image, audio or video that
    decodes, 413 when its pictures have more pixels than SPINBOT_MAX_IMAGE_MEGAPIXELS."""
    max_pixels = int(services.settings.max_image_megapixels * 1e6)
    try:
        return await asyncio.to_thread(decode, path, declared, max_pixels)
    except Refused as e:
        shown = (name or "the file").rsplit("/", 1)[-1][:200]
        why = e.why.replace(f"'{path}'", "").replace(str(path), "").replace("  ", " ").strip()  # no server paths
        if e.status == 413:
            raise Problem("too_many_pixels", f"{shown} is too large a picture: {why[:200]}", field=shown,
                          hint="send a smaller picture (scale it down), or raise SPINBOT_MAX_IMAGE_MEGAPIXELS"
                          ) from None
        raise Problem("unsupported_attachment", f"{shown} is {why[:200]}", field=shown, hint=HINT) from None


async def _save(services: Services, owner: str, name: str | None, declared: str, path: Path) -> dict[str, Any]:
    """Store a file as what its content is (its declared type only names what was expected)."""
    found = await check_content(services, path, name, declared)
    att_id = "a" + uuid.uuid4().hex[:12]
    fname = safe_name(name, found.content_type)
    key = upload_key(owner, att_id, fname)
    info = await services.artifacts.put_file(key, path, found.content_type)
    await services.repo.add_upload(owner, fname, info)
    return {"id": att_id, "kind": found.kind, "key": key, "name": fname, "contentType": found.content_type,
            "size": info.size}


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
            raise Problem("invalid_attachment", "an attachment needs `data` (a data: URL) or the `key` of an upload",
                          hint="send data:<type>;base64,<payload>")
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
