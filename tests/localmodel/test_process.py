"""The embedded model server as `spinbot up` runs it: started on a free port, restarted on the same port when killed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from spinbot.embedded import Supervisor
from spinbot.localmodel.process import ModelServer
from tests.localmodel.small import small_gguf


def test_the_model_server_is_restarted_on_its_port_when_killed(tmp_path: Path) -> None:
    server = ModelServer(tmp_path / "model", small_gguf(), model="small:test").start()
    supervisor = Supervisor([server], interval_s=0.2).start()
    try:
        tags = httpx.get(f"{server.url}/api/tags", timeout=5).json()
        assert [m["name"] for m in tags["models"]] == ["small:test"]
        assert tags["models"][0]["digest"].startswith("sha256:")
        port, first = server.port, server.proc
        assert first is not None
        first.kill()
        deadline = time.monotonic() + 100
        while time.monotonic() < deadline and supervisor._watches[0].restarts == 0:  # restarted: it answers again
            time.sleep(0.2)
        assert server.proc is not first and server.port == port
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                  "additionalProperties": False}
        reply = httpx.post(f"{server.url}/api/chat", timeout=60, json={
            "model": "small:test", "stream": False, "format": schema, "options": {"temperature": 0, "num_predict": 16},
            "messages": [{"role": "user", "content": "Is water wet? Answer in JSON."}]}).json()
        assert reply["done"] is True and isinstance(json.loads(reply["message"]["content"])["ok"], bool)
    finally:
        supervisor.stop()
        server.stop()
    assert (tmp_path / "model" / "model.log").exists()
