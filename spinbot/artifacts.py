"""Artifact storage: S3/MinIO through the minio client, or a local directory. Always streamed."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import urllib3
from minio import Minio
from minio.error import S3Error

from spinbot.constants import owned_prefixes
from spinbot.errors import PermanentError, TransientError
from spinbot.settings import Settings

CHUNK = 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    key: str
    size: int
    sha256: str
    content_type: str

    def descriptor(self) -> dict[str, object]:
        """How an artifact appears in a node's output."""
        return {"key": self.key, "contentType": self.content_type, "size": self.size, "sha256": self.sha256}


class ArtifactNotFound(PermanentError):
    code = "artifact_not_found"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _guess_type(path: Path | str) -> str:
    return mimetypes.guess_type(str(path))[0] or "application/octet-stream"


class ArtifactStore(Protocol):
    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ArtifactInfo: ...
    async def get_file(self, key: str, dest: Path) -> Path: ...
    async def stat(self, key: str) -> ArtifactInfo: ...
    def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]: ...
    async def check(self) -> None: ...


def _safe_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ArtifactNotFound(f"invalid artifact key {key!r}")
    return key


class LocalStore:
    """Artifacts as files under a directory; metadata in a sidecar so stat needs no re-hash."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    async def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise PermanentError(f"artifact directory {self.root} is not writable")

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ArtifactInfo:
        def put() -> ArtifactInfo:
            dest = self._path(key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".part")
            try:
                shutil.copyfile(path, tmp)
                os.replace(tmp, dest)  # atomic: a reader never sees half a file
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            ctype = content_type or _guess_type(path)
            dest.with_name(dest.name + ".type").write_text(ctype)
            digest = _sha256_file(dest)
            dest.with_name(dest.name + ".sha256").write_text(digest)
            return ArtifactInfo(key, dest.stat().st_size, digest, ctype)

        return await asyncio.to_thread(put)

    async def get_file(self, key: str, dest: Path) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise ArtifactNotFound(f"artifact {key} does not exist")
        await asyncio.to_thread(shutil.copyfile, src, dest)
        return dest

    async def stat(self, key: str) -> ArtifactInfo:
        def stat() -> ArtifactInfo:
            p = self._path(key)
            if not p.is_file():
                raise ArtifactNotFound(f"artifact {key} does not exist")
            tfile, dfile = p.with_name(p.name + ".type"), p.with_name(p.name + ".sha256")
            ctype = tfile.read_text() if tfile.exists() else _guess_type(p)
            digest = dfile.read_text() if dfile.exists() else _sha256_file(p)  # a node cache hit stats, not hashes
            return ArtifactInfo(key, p.stat().st_size, digest, ctype)

        return await asyncio.to_thread(stat)

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        p = self._path(key)
        if not p.is_file():
            raise ArtifactNotFound(f"artifact {key} does not exist")
        f = await asyncio.to_thread(p.open, "rb")
        try:
            await asyncio.to_thread(f.seek, start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                n = CHUNK if remaining is None else min(CHUNK, remaining)
                chunk = await asyncio.to_thread(f.read, n)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            f.close()


class ArtifactStoreUnavailable(TransientError):
    code = "artifact_store_unavailable"


_MISSING = ("NoSuchKey", "NoSuchBucket", "NoSuchUpload")


class S3Store:
    """Artifacts in an S3 bucket (MinIO in compose.yaml) through the minio client.

    Errors: ArtifactNotFound for a missing object or bucket; ArtifactStoreUnavailable (transient) when
    the endpoint cannot be reached or the connection drops (an upload cut short leaves no object: S3
    makes an object visible only once its upload completes); PermanentError for any other S3 refusal.
    """

    def __init__(self, settings: Settings) -> None:
        assert settings.s3_endpoint
        self.endpoint = settings.s3_endpoint
        self.bucket = settings.s3_bucket
        self.client = Minio(
            settings.s3_endpoint.removeprefix("http://").removeprefix("https://"),
            access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
            secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            secure=settings.s3_secure or settings.s3_endpoint.startswith("https://"),
        )

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) off the event loop, its failures as Spinbot errors that say what failed."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except S3Error as e:
            if e.code in _MISSING:
                raise ArtifactNotFound(f"artifact {what} does not exist ({e.code})") from e
            raise PermanentError(f"the artifact store refused {what}: {e.code} {e.message}") from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ArtifactStoreUnavailable(
                f"the artifact store at {self.endpoint} is unreachable ({what}: {type(e).__name__})",
                hint="check that the object store is running and SPINBOT_S3_ENDPOINT points at it",
            ) from e

    async def check(self) -> None:
        def ensure() -> None:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)

        await self._call(f"bucket {self.bucket}", ensure)

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ArtifactInfo:
        ctype = content_type or _guess_type(path)
        digest = await asyncio.to_thread(_sha256_file, path)
        size = (await asyncio.to_thread(path.stat)).st_size
        await self._call(key, self.client.fput_object, self.bucket, _safe_key(key), str(path), content_type=ctype,
                         metadata={"x-amz-meta-sha256": digest})
        return ArtifactInfo(key, size, digest, ctype)

    async def get_file(self, key: str, dest: Path) -> Path:
        await self._call(key, self.client.fget_object, self.bucket, _safe_key(key), str(dest))
        return dest

    async def stat(self, key: str) -> ArtifactInfo:
        st = await self._call(key, self.client.stat_object, self.bucket, _safe_key(key))
        meta = st.metadata or {}
        digest = meta.get("x-amz-meta-sha256") or meta.get("X-Amz-Meta-Sha256") or ""
        return ArtifactInfo(key, st.size or 0, digest, st.content_type or "application/octet-stream")

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes start..end (inclusive; end None: to the end of the object), in chunks of at most CHUNK."""
        length = 0 if end is None else end - start + 1
        resp = await self._call(key, self.client.get_object, self.bucket, _safe_key(key), offset=start, length=length)
        try:
            while chunk := await self._call(key, resp.read, CHUNK):
                yield chunk
        finally:
            resp.close()
            resp.release_conn()


OwnerLookup = Callable[[str], Awaitable[str | None]]


class OwnedStore:
    """One job's view of the artifact store: it reads only objects its owner owns (defence in depth).

    The API already refuses graphs that name another key's objects; this guard makes sure no task,
    whatever key reaches it (a literal param, a carried-over output), reads one either. Keys under the
    owner's upload prefix or the job's own prefix pass at once; any other key passes only if Postgres
    (`owner_of`, None without a store) records the same owner. A foreign key reads as absent
    (ArtifactNotFound), so nothing leaks whether it exists. Writes stay under the job's own prefix.
    """

    def __init__(self, inner: ArtifactStore, *, owner: str, job_id: str, owner_of: OwnerLookup | None) -> None:
        self.inner = inner
        self.owner = owner
        self.job_id = job_id
        self.prefixes = owned_prefixes(owner, job_id)
        self.owner_of = owner_of
        self._allowed: set[str] = set()

    async def _check(self, key: str) -> str:
        _safe_key(key)
        if key.startswith(self.prefixes) or key in self._allowed:
            return key
        if self.owner and self.owner_of is not None and await self.owner_of(key) == self.owner:
            self._allowed.add(key)
            return key
        raise ArtifactNotFound(f"artifact {key} does not exist for this job's API key",
                               hint="use an upload or an output made with the same API key")

    async def put_file(self, key: str, path: Path, content_type: str | None = None) -> ArtifactInfo:
        if not key.startswith(self.prefixes[1]):
            raise PermanentError(f"a task of job {self.job_id} may only write under {self.prefixes[1]}, not {key}")
        return await self.inner.put_file(key, path, content_type)

    async def get_file(self, key: str, dest: Path) -> Path:
        return await self.inner.get_file(await self._check(key), dest)

    async def stat(self, key: str) -> ArtifactInfo:
        return await self.inner.stat(await self._check(key))

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        async for chunk in self.inner.stream(await self._check(key), start, end):
            yield chunk

    async def check(self) -> None:
        await self.inner.check()


def open_store(settings: Settings) -> ArtifactStore:
    return S3Store(settings) if settings.s3_endpoint else LocalStore(settings.artifacts_dir)
