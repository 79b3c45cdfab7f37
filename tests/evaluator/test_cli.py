"""`spinbot evaluate FILE` and the manifest it judges against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from evaluator.cli import committed_manifest, current_manifest, evaluate_command
from spinbot.capabilities import publish
from spinbot.manifest import PlaneManifest, ServiceSpec
from spinbot.settings import Settings


def echo_graph(*, cycle: bool = False) -> dict[str, object]:
    edges = [{"from": "b", "to": "a"}] if cycle else []
    return {
        "schema": "langgraph.v1",
        "workflowId": "cli",
        "nodes": [
            {"id": "a", "service": "diag.echo", "plane": "control", "params": {"text": "hi"}},
            {"id": "b", "service": "diag.echo", "plane": "gpu", "params": {"text": {"$node": "a", "output": "text"}}},
        ],
        "edges": edges,
    }


@pytest.mark.parametrize(("doc", "code"), [(echo_graph(), 0), (echo_graph(cycle=True), 1), (None, 2)])
def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: object, code: int) -> None:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(doc) if doc is not None else "{not json")
    assert evaluate_command(Settings(data_dir=tmp_path), path) == code
    out = capsys.readouterr().out
    if code == 2:
        assert "cannot read" in out
    if code == 1:
        assert "cycle" in out and "rejected" in out
    if code == 0:
        assert "manifest: committed" in out and "approved" in out


async def test_live_manifest_wins_when_an_executor_is_up(redis: aioredis.Redis, redis_url: str, tmp_path: Path) -> None:
    settings = Settings(redis_url=redis_url, data_dir=tmp_path)
    _, source = await current_manifest(settings)
    assert source == "committed"  # Redis answers but no executor has published
    spec = committed_manifest().services["diag.echo"].model_dump()
    live = PlaneManifest(plane="gpu", executor="gpu-1", services=[ServiceSpec.model_validate(spec)])
    await publish(redis, live, ttl_s=30)
    manifest, source = await current_manifest(settings)
    assert source == "live" and list(manifest.services) == ["diag.echo"]
    assert manifest.planes["gpu"].executors == ["gpu-1"]


async def test_unreachable_redis_means_committed(tmp_path: Path) -> None:
    _, source = await current_manifest(Settings(redis_url="redis://127.0.0.1:9/0", data_dir=tmp_path))
    assert source == "committed"
