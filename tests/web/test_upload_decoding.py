"""Uploads are decoded at the door (issue 22, items 8, 11, 12, 13): pixel bombs 413 before decoding, damaged
files 415 now (not in a job later), the content decides the type, names keep their letters and extension."""

from __future__ import annotations

import base64
import io
import struct
import unicodedata
import zlib
from pathlib import Path
from urllib.parse import unquote

import httpx
import numpy as np
from PIL import Image

from tests.tasks.conftest import make_video
from tests.web.conftest import LiveAPI, png_bytes, wav_bytes


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int, rows: int | None = None) -> bytes:
    """A greyscale PNG of width x height black pixels, compressed about 1000:1; `rows`: only that many rows
    of data follow the header (a header that claims the size is all a bomb needs to be refused)."""
    raw = zlib.compressobj(9)
    body = b"".join(raw.compress(b"\x00" * (width + 1)) for _ in range(height if rows is None else rows))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body + raw.flush()) + _chunk(b"IEND", b"")


def bomb_jpeg(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) claims width x height."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 90, 90)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def photo(fmt: str, size: int = 256) -> bytes:
    """A noisy picture (it does not compress away, so half of it is really half)."""
    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB").save(buf, fmt)
    return buf.getvalue()


async def _upload(c: httpx.AsyncClient, name: str, data: bytes, ctype: str) -> httpx.Response:
    return await c.post("/api/uploads", files={"files": (name, data, ctype)})


async def test_pixel_bombs_are_refused_before_decoding(api: LiveAPI) -> None:
    assert api.settings.max_image_megapixels == 50
    async with api.client() as c:
        cases = [("bomb.png", bomb_png(30_000, 30_000, rows=50)),  # the field report: 900 megapixels
                 ("bomb2.png", bomb_png(8_000, 8_000)),  # 64 MP, every row there (66 KB)
                 ("big.png", bomb_png(10_000, 10_000, rows=50)),  # 100 MP: between our limit and Pillow's
                 ("bomb.jpg", bomb_jpeg(60_000, 60_000))]
        for name, data in cases:
            assert len(data) < 200_000
            r = await _upload(c, name, data, "image/png")
            assert r.status_code == 413, (name, r.status_code, r.text)
            body = r.json()
            assert body["code"] == "too_many_pixels" and "megapixels" in body["detail"] and name in body["detail"]
            assert "SPINBOT_MAX_IMAGE_MEGAPIXELS" in body["hint"]
        # the same through a data URL, on the chat and planning paths
        attachments = [{"name": "b.png", "data": "data:image/png;base64," + base64.b64encode(cases[0][1]).decode()}]
        for path, body in (("/api/plan", {"goal": "animate this", "attachments": attachments}),
                           ("/api/chat", {"message": "animate this", "attachments": attachments})):
            r = await c.post(path, json=body)
            assert r.status_code == 413 and r.json()["code"] == "too_many_pixels", (path, r.text)


async def test_damaged_files_are_refused_at_the_door(api: LiveAPI) -> None:
    async with api.client() as c:
        for fmt, ctype in (("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")):
            whole = photo(fmt)
            assert (await _upload(c, f"ok.{fmt.lower()}", whole, ctype)).status_code == 201
            r = await _upload(c, f"cut.{fmt.lower()}", whole[: len(whole) // 2], ctype)
            assert r.status_code == 415, (fmt, r.status_code, r.text)
            assert r.json()["detail"].startswith(f"cut.{fmt.lower()} is a damaged image"), r.json()
            assert "/tmp" not in r.json()["detail"]


async def test_the_content_decides_the_type(api: LiveAPI, tmp_path: Path) -> None:
    jpeg = photo("JPEG", 32)
    mp4 = make_video(tmp_path / "clip.mp4", 64, 48, 10, 10).read_bytes()
    async with api.client() as c:
        for name, data, declared, kind, stored, stored_name in (
            ("face.png", png_bytes(), "application/octet-stream", "image", "image/png", "face.png"),  # the report
            ("face", png_bytes(), "", "image", "image/png", "face.png"),
            ("photo.png", jpeg, "image/png", "image", "image/jpeg", "photo.jpg"),
            ("voice.wav", png_bytes(), "audio/wav", "image", "image/png", "voice.png"),
            ("voice.wav", wav_bytes(), "application/octet-stream", "audio", "audio/wav", "voice.wav"),
            ("voice.bin", wav_bytes(), "image/png", "audio", "audio/wav", "voice.wav"),
            ("clip", mp4, "application/octet-stream", "video", "video/mp4", "clip.mp4"),
        ):
            r = await _upload(c, name, data, declared)
            assert r.status_code == 201, (name, declared, r.text)
            item = r.json()["items"][0]
            assert (item["kind"], item["contentType"], item["name"]) == (kind, stored, stored_name), (name, item)
            got = await c.get(f"/api/artifacts/{item['key']}")
            assert got.headers["content-type"] == stored and got.content == data
        # a data URL's declared type counts no more than a multipart one's
        data_url = "data:application/octet-stream;base64," + base64.b64encode(png_bytes()).decode()
        r = await c.post("/api/plan", json={"goal": "describe this", "attachments": [{"name": "x", "data": data_url}]})
        assert r.status_code == 200, r.text
        # words are a text file, unless they were sent as a picture or a recording (which they are not)
        for declared, stored in (("application/octet-stream", "text/plain"), ("text/markdown", "text/markdown")):
            r = await _upload(c, "notes.txt", "Grüße, just some words.\r\n".encode(), declared)
            assert r.status_code == 201, (declared, r.text)
            assert (r.json()["items"][0]["kind"], r.json()["items"][0]["contentType"]) == ("text", stored)
        for declared in ("image/png", "audio/wav"):
            r = await _upload(c, "notes.txt", b"just some words, nothing to see", declared)
            assert r.status_code == 415 and r.json()["code"] == "unsupported_attachment", (declared, r.text)
        # what is no picture, audio, video or text is still refused, whatever it claims
        for declared in ("application/octet-stream", "text/plain"):
            r = await _upload(c, "blob.bin", b"PK\x03\x04\x00\x00binary", declared)
            assert r.status_code == 415 and r.json()["code"] == "unsupported_attachment", (declared, r.text)
        r = await _upload(c, "long.txt", b"word " * 20_000, "text/plain")  # more words than a step takes
        assert r.status_code == 415, r.text


async def test_names_keep_their_letters_and_extension(api: LiveAPI) -> None:
    long = "a" * 296 + ".png"
    cases = (("портрет.png", "портрет.png"), ("顔写真.png", "顔写真.png"), ("हिन्दी चित्र.png", "हिन्दी_चित्र.png"),
             (unicodedata.normalize("NFD", "Zoë.png"), "Zoë.png"), ("../../etc/passwd.png", "passwd.png"))
    async with api.client() as c:
        for sent, kept in (*cases, (long, None), ("顔" * 300 + ".png", None)):
            r = await _upload(c, sent, png_bytes(), "image/png")
            assert r.status_code == 201, (sent, r.text)
            item = r.json()["items"][0]
            name = item["name"]
            assert name.endswith(".png") and len(name.encode()) <= 120, name
            assert item["key"].endswith("/" + name)
            if kept is not None:
                assert name == kept, (sent, name)
            else:
                assert name.startswith(sent[:10])
            got = await c.get(f"/api/artifacts/{item['key']}")
            assert got.status_code == 200 and got.content == png_bytes()
            disposition = got.headers["content-disposition"]
            if not name.isascii():  # RFC 8187: the name itself, and an ASCII fallback
                assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == name, disposition
                disposition.encode("ascii")
