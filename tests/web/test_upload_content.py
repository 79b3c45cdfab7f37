"""Uploads are checked by content, and a task's own OSError is the node's failure, not an outage."""

from __future__ import annotations

import asyncio
import base64

from tests.web.conftest import LiveAPI, diag_graph, png_bytes, wav_bytes

TEXT = b"this is a text file, not a picture"


async def test_files_are_checked_by_content_on_every_path(api: LiveAPI) -> None:
    async with api.client() as c:
        # the field report: a text file uploaded as fake.png
        r = await c.post("/api/uploads", files={"files": ("fake.png", TEXT, "image/png")})
        assert r.status_code == 415, r.text
        assert r.json()["detail"].startswith("fake.png is not an image") and r.json()["field"] == "fake.png"
        assert "/tmp" not in r.json()["detail"] and ".spinbot" not in r.json()["detail"], r.json()  # no server paths
        # siblings: fake audio, a fake video, the same bytes as a data URL in chat and plan (an image sent as
        # audio is an image: the content decides, tests/web/test_upload_decoding.py)
        for name, data, ctype in (("voice.wav", TEXT, "audio/wav"), ("clip.mp4", TEXT, "video/mp4")):
            r = await c.post("/api/uploads", files={"files": (name, data, ctype)})
            assert r.status_code == 415 and name in r.json()["detail"], (name, r.text)
        fake = [{"name": "me.png", "data": "data:image/png;base64," + base64.b64encode(TEXT).decode()}]
        for path, body in (("/api/plan", {"goal": "animate this", "attachments": fake}),
                           ("/api/chat", {"message": "animate this", "attachments": fake}),
                           ("/api/pipelines/sadtalker/runs", {"params": {"text": "hi"}, "attachments": fake})):
            r = await c.post(path, json=body)
            assert r.status_code == 415 and "me.png is not an image" in r.json()["detail"], (path, r.text)
        # real files pass
        for name, data, ctype in (("face.png", png_bytes(), "image/png"), ("voice.wav", wav_bytes(), "audio/wav")):
            r = await c.post("/api/uploads", files={"files": (name, data, ctype)})
            assert r.status_code == 201, (name, r.text)


async def test_a_tasks_oserror_fails_the_node_at_once(api: LiveAPI, executors) -> None:
    graph = diag_graph({"id": "f", "service": "diag.fail", "plane": "gpu",
                        "params": {"mode": "oserror", "message": "cannot identify image file 'face.png'"}})
    async with api.client() as c:
        job_id = (await c.post("/api/jobs", json={"graph": graph})).json()["id"]
        for _ in range(100):
            job = (await c.get(f"/api/jobs/{job_id}")).json()
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            await asyncio.sleep(0.1)
    assert job["status"] == "failed", job  # within 10 s, not after five redeliveries
    node = job["graph"]["nodes"][0]
    assert node["attempts"] == 1 and node["error"]["transient"] is False, node
    assert "cannot identify image file" in node["error"]["message"]
