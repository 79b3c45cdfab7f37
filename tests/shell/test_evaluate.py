"""`spinbot evaluate FILE [--live]` (shell/evaluate.py) and the manifest it judges against."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from shell.evaluate import current_manifest, evaluate_command
from spinbot.capabilities import committed_manifest, publish
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


def test_the_verdict_is_the_same_from_any_directory_and_says_its_manifest(
        redis_url: str, redis: aioredis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the directory of a running `spinbot up` (runtime.json names its Redis, whose live manifest says the
    script service cannot run) and from anywhere else: the same verdict, against the committed manifests, said so.
    `--live` judges as the API would admit it now, and says when there is no running Spinbot to ask."""
    from typer.testing import CliRunner

    from shell.cli import app
    from spinbot.runtime import write_runtime

    for name in ("SPINBOT_REDIS_URL", "SPINBOT_DATABASE_URL", "SPINBOT_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    spec = committed_manifest().services["llm.generate_script"].model_dump()
    spec |= {"available": False, "unavailable_reason": "no LLM answers at http://127.0.0.1:9"}
    live = PlaneManifest(plane="control", executor="control-1", services=[ServiceSpec.model_validate(spec)])
    asyncio.run(publish_once(redis_url, live))
    running, elsewhere = tmp_path / "running", tmp_path / "elsewhere"
    running.mkdir(), elsewhere.mkdir()
    write_runtime(Settings(data_dir=running / ".spinbot"), redis_url=redis_url, pid=1, api_url="http://127.0.0.1:1")
    graph = tmp_path / "script.json"
    graph.write_text(json.dumps({"schema": "langgraph.v1", "workflowId": "s", "nodes": [
        {"id": "s", "service": "llm.generate_script", "plane": "control", "params": {"topic": "tides"}}]}))
    runner = CliRunner()
    outputs = []
    for where in (running, elsewhere):
        monkeypatch.chdir(where)
        result = runner.invoke(app, ["evaluate", str(graph)], env={"COLUMNS": "300", "NO_COLOR": "1"})
        assert result.exit_code == 0, result.output
        assert result.output.startswith("manifest: committed") and "approved" in result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1]
    monkeypatch.chdir(running)
    live_result = runner.invoke(app, ["evaluate", "--live", str(graph)], env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert live_result.exit_code == 1, live_result.output
    assert live_result.output.startswith("manifest: live, 1 executor(s)")
    assert "service_unavailable" in live_result.output
    monkeypatch.chdir(elsewhere)
    nowhere = runner.invoke(app, ["evaluate", "--live", str(graph)], env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert nowhere.exit_code == 3 and "no running Spinbot found" in nowhere.output, nowhere.output


def script_graph(tmp_path: Path) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"schema": "langgraph.v1", "workflowId": "s", "nodes": [
        {"id": "s", "service": "llm.generate_script", "plane": "control", "params": {"topic": "tides"}}]}))
    return path


@pytest.mark.parametrize(("available", "code", "said"), [
    (True, 0, "verdict: approved"),
    (False, 1, "service_unavailable"),
])
def test_live_judges_by_what_the_running_executors_publish(
        redis_url: str, redis: aioredis.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        available: bool, code: int, said: str) -> None:
    """--live: 0 when the graph is approved against the live manifest, 1 when refused by it (a service its executor
    reports unavailable), whatever the committed manifest says; the first line names the live manifest."""
    spec = committed_manifest().services["llm.generate_script"].model_dump()
    if not available:
        spec |= {"available": False, "unavailable_reason": "no LLM answers at http://127.0.0.1:9"}
    live = PlaneManifest(plane="control", executor="control-1", services=[ServiceSpec.model_validate(spec)])
    asyncio.run(publish_once(redis_url, live))
    assert evaluate_command(Settings(redis_url=redis_url, data_dir=tmp_path), script_graph(tmp_path), live=True) == code
    out = capsys.readouterr().out
    assert out.startswith("manifest: live, 1 executor(s)"), out
    assert said in out, out


@pytest.mark.parametrize(("redis_url", "said"), [
    (None, "no running Spinbot found"),
    ("redis://127.0.0.1:9/0", "does not answer"),
])
def test_live_without_a_running_spinbot_exits_3(redis_url: str | None, said: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--live with no Redis configured, or one that does not answer: exit 3 and what to do, no verdict."""
    assert evaluate_command(Settings(redis_url=redis_url, data_dir=tmp_path), script_graph(tmp_path), live=True) == 3
    out = capsys.readouterr().out
    assert said in out and "hint:" in out and "verdict" not in out, out


async def publish_once(redis_url: str, manifest: PlaneManifest) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await publish(client, manifest, ttl_s=60)
    finally:
        await client.aclose()


def test_tables_at_80_columns_keep_codes_whole_and_round_times(tmp_path: Path) -> None:
    """A verdict read in an 80-column terminal: times as durations (no "~0.626667s"), codes and ids never cut."""
    from typer.testing import CliRunner

    from shell.cli import app

    runner = CliRunner()
    env = {"COLUMNS": "80", "NO_COLOR": "1"}
    example = Path(__file__).parents[2] / "examples" / "talking-head.json"
    approved = runner.invoke(app, ["evaluate", str(example)], env=env).output
    assert "approved" in approved, approved
    # "~0.6 s", "~22 min 30 s": never "~0.626667s"
    assert re.search(r"~\d+(\.\d)? s", approved) and not re.search(r"\d\.\d{2,}", approved), approved
    table = [line for line in approved.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and all(len(line) <= 80 for line in table), approved  # the table fits; text wraps between words
    assert "video.animate_portrait" in approved, approved  # a service id whole

    graph = echo_graph()
    graph["nodes"][1]["params"] = {"text": {"$node": "a", "output": "no_such_output_of_a"}}  # type: ignore[index]
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(graph))
    refused = runner.invoke(app, ["evaluate", str(path)], env=env)
    assert refused.exit_code == 1, refused.output
    codes = [line.split("│")[2].strip() for line in refused.output.splitlines() if line.count("│") > 3
             and line.split("│")[1].strip() in ("error", "warning")]
    assert "unknown_output" in codes, refused.output  # whole, on one line
    assert all(code.replace("_", "").isalpha() for code in codes), refused.output
