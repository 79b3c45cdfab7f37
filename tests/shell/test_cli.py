"""The CLI as a person meets it: where the API listens (--host, --port) and `spinbot chat` following it;
clean output (no library log lines, the model never named as if it answered, each thing said once); a
stopped job's bars show what completed."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from shell.cli import app
from shell.submit import follow
from spinbot import ROOT
from spinbot.embedded import free_port
from spinbot.graph import Graph
from spinbot.queue import JobQueue
from spinbot.runtime import resolve, write_runtime
from spinbot.settings import Settings
from tests.runtime.conftest import executor_env
from tests.web.conftest import echo_node, wait_node

runner = CliRunner()


def plain(text: str) -> str:
    """Help text without rich's colour codes and box drawing."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.mark.parametrize("command", ["up", "api"])
def test_up_and_api_take_host_and_port(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []
    if command == "up":
        monkeypatch.setattr("shell.up.run_up", lambda s, verbose=False: seen.append(s))
    else:
        monkeypatch.setattr("web.app.serve", seen.append)
    helped = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert "--host" in plain(helped.output) and "--port" in plain(helped.output)
    result = runner.invoke(app, [command, "--host", "0.0.0.0", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert (seen[0].host, seen[0].port) == ("0.0.0.0", 8123)
    assert runner.invoke(app, [command, "--port", "99999"]).exit_code != 0  # not a port


def test_chat_follows_the_running_up_or_its_api_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPINBOT_API_URL", raising=False)
    monkeypatch.delenv("SPINBOT_PORT", raising=False)
    monkeypatch.delenv("SPINBOT_HOST", raising=False)
    from shell.client import api_url

    settings = Settings(data_dir=tmp_path, redis_url="redis://x", database_url="postgresql://x")
    assert api_url(resolve(settings)) == "http://127.0.0.1:8000"  # nothing running: the default address
    write_runtime(settings, redis_url="redis://r", database_url="postgresql://p", api_url="http://127.0.0.1:8100")
    assert api_url(resolve(settings)) == "http://127.0.0.1:8100"  # `spinbot up --port 8100` is running here
    told = settings.model_copy(update={"port": 8200})
    assert api_url(resolve(told)) == "http://127.0.0.1:8200"  # SPINBOT_PORT said otherwise: it wins

    seen: list[Settings] = []

    async def fake_chat(s: Settings, goal: str) -> int:
        seen.append(s)
        return 0

    monkeypatch.setattr("shell.client.chat_command", fake_chat)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["chat", "--api", "http://10.0.0.5:8300", "hello"])
    assert result.exit_code == 0, result.output
    assert api_url(seen[0]) == "http://10.0.0.5:8300"


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shell.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


async def test_api_on_another_port_and_chat_there_with_clean_output(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = executor_env(settings, COLUMNS="80")
    log = (tmp_path / "api.log").open("wb")
    api = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shell.cli", "api", "--host", "127.0.0.1", "--port", str(port),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as http:
            while True:
                assert api.returncode is None, (tmp_path / "api.log").read_text()
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health", timeout=2)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the API did not come up on --port"
                await asyncio.sleep(0.3)
        done = await asyncio.to_thread(cli, "chat", "--api", f"http://127.0.0.1:{port}", "hello!", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Hello! I'm Spinbot" in done.stdout
        assert "INFO" not in done.stdout + done.stderr  # no `INFO httpx: HTTP Request` lines without -v
        loud = await asyncio.to_thread(cli, "chat", "-v", "--api", f"http://127.0.0.1:{port}", "hello!", env=env)
        assert "INFO httpx: HTTP Request: POST" in loud.stderr  # -v shows them
    finally:
        api.terminate()
        await asyncio.wait_for(api.wait(), 20)
        log.close()


def test_plan_without_ollama_names_no_model_and_numbers_nothing(tmp_path: Path) -> None:
    env = dict(os.environ, SPINBOT_DATA_DIR=str(tmp_path), SPINBOT_OLLAMA_URL="http://127.0.0.1:9",
               SPINBOT_OLLAMA_MODEL="qwen2.5:7b-instruct", COLUMNS="80", SPINBOT_PLANNER_TRUST="rules")
    env.pop("SPINBOT_REDIS_URL", None)
    done = cli("plan", "read this aloud: hello, this is a line long enough to pass eighty columns when planned",
               env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "qwen2.5" not in out  # never "asking qwen2.5 ..." nor "model: qwen2.5" when Ollama is down
    assert "LLM: none" in out and "read by rules" in out
    assert "attempt" not in out and "INFO" not in out and "WARNING" not in out
    assert out.count("Planned: speech") == 1  # what the planner did, once
    said = next(line for line in out.splitlines() if line.startswith("Planned: speech"))
    assert "SPINBOT_OLLAMA_URL)." in said  # the whole sentence on one line: not wrapped at 80 columns


def stopped_graph() -> dict[str, Any]:
    """Half the work completes, then a step fails for good: 50 % done, not 100 %."""
    first = echo_node("first") | {"progressWeight": 0.5}
    boom = {"id": "boom", "service": "diag.fail", "plane": "gpu", "progressWeight": 0.5,
            "params": {"mode": "permanent"}}
    return {"schema": "langgraph.v1", "workflowId": "stops", "nodes": [first, boom],
            "edges": [{"from": "first", "to": "boom"}]}


async def test_submit_wait_bars_show_what_completed(settings: Settings, executors: Any, queue: JobQueue) -> None:
    graph = Graph.model_validate(stopped_graph())
    out = io.StringIO()
    code = await follow(await queue.run(graph, owner="local"), graph, Console(file=out, width=120),
                        base="http://127.0.0.1:8000")
    text = out.getvalue()
    assert code == 1, text
    last = {line.split()[0]: line for line in text.splitlines() if "%" in line}  # each bar's last drawing
    assert "50.0%" in last["job"] and "failed" in last["job"], text  # not 100.0 %
    assert "100.0%" in last["first"] and "100.0%" not in last["boom"], text
    # the bar ending below where it was is said in words: what finished, what stopped
    assert "job failed: 50 % finished" in text and "finished: first; failed: boom" in text, text

    cancelled = Graph.model_validate({"schema": "langgraph.v1", "workflowId": "c", "nodes": [wait_node("w", 30)]})
    job = await queue.run(cancelled, owner="local")

    async def cancel_soon() -> None:
        await asyncio.sleep(1.0)
        await job.cancel()

    out = io.StringIO()
    task = asyncio.create_task(cancel_soon())
    assert await follow(job, cancelled, Console(file=out, width=120)) == 1
    await task
    job_line = [line for line in out.getvalue().splitlines() if line.strip().startswith("job") and "%" in line][-1]
    assert "0.0%" in job_line and "cancelled" in job_line, out.getvalue()


async def test_submit_summary_lists_artifacts_once_as_links(settings: Settings, executors: Any,
                                                            queue: JobQueue) -> None:
    graph = Graph.model_validate({"schema": "langgraph.v1", "workflowId": "speak", "nodes": [
        {"id": "voice", "service": "tts.synthesize", "plane": "gpu", "params": {"text": "Hello there."}},
        {"id": "publish", "service": "artifact.publish", "plane": "control",
         "params": {"items": [{"$node": "voice", "output": "audio"}]}},
    ]})
    job = await queue.run(graph, owner="local")
    job_id = job.id
    out = io.StringIO()
    assert await follow(job, graph, Console(file=out, width=80, soft_wrap=True),
                        base="http://127.0.0.1:8000") == 0
    text = out.getvalue()
    assert "sha256" not in text and '"contentType"' not in text, text  # no raw descriptors
    links = [line for line in text.splitlines() if "/api/artifacts/" in line]
    assert len(links) == 1 and links[0].rstrip().endswith("/voice/speech.wav"), text  # once, whole
    assert " KB" in links[0] and "reused" not in text

    # The same graph again: the node cache answers the speech, and the bar and the link say so (whose folder)
    again = await queue.run(graph, owner="local")
    out = io.StringIO()
    assert await follow(again, graph, Console(file=out, width=120, soft_wrap=True),
                        base="http://127.0.0.1:8000") == 0
    text = out.getvalue()
    voice_bar = [line for line in text.splitlines() if line.strip().startswith("voice") and "%" in line][-1]
    assert "reused" in voice_bar, text
    links = [line for line in text.splitlines() if "/api/artifacts/" in line]
    assert len(links) == 1 and f"reused from job {job_id[:8]}): " in links[0], text
    assert f"/api/artifacts/jobs/{job_id}/voice/" in links[0], text


@pytest.fixture
async def queue(redis: Any, store: Any) -> AsyncIterator[JobQueue]:
    q = JobQueue(redis, store)
    await q.ensure_groups()
    yield q
    await q.hub.stop()  # follow's reader


def test_json_is_not_printed_for_descriptors() -> None:
    from shell.submit import _short

    found: dict[str, Any] = {}
    short = _short({"summary": {"items": [{"key": "jobs/j/v/a.wav", "contentType": "audio/wav", "sha256": "x"}]}},
                   found, "publish")
    assert json.dumps(short) == '{"summary": {"items": ["a.wav"]}}' and list(found) == ["jobs/j/v/a.wav"]


@pytest.mark.parametrize("node", [
    {"id": "a", "service": "diag.echo", "plane": "control", "params": {"text": "hi", "loud": True}},  # unknown_param
    {"id": "a", "service": "diag.echo", "plane": "control", "params": {"text": "hi"}, "status": "completed",
     "output": {"text": "smuggled"}},  # preset_state
    {"id": "a", "service": "diag.wait", "plane": "control", "params": {"seconds": -5}},  # invalid_param
])
async def test_submit_refuses_what_the_api_refuses(api: Any, node: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from shell.submit import submit_command

    graph = {"schema": "langgraph.v1", "workflowId": "refused", "nodes": [node]}
    async with api.client() as c:
        answer = await c.post("/api/jobs", json={"graph": graph})
    assert answer.status_code == 422, answer.text
    codes = {f["code"] for f in answer.json()["findings"] if f["severity"] == "error"}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(graph))
    assert await submit_command(api.settings, path, wait=False) == 2
    err = capsys.readouterr().err
    assert "the API would answer 422" in err and all(code in err for code in codes), (codes, err)
    assert await api.services.redis.xlen("spinbot:plane:control") == 0  # nothing queued

    graph["nodes"] = [echo_node("a")]
    path.write_text(json.dumps(graph))
    assert await submit_command(api.settings, path, wait=False) == 0  # what the API admits is queued
    assert await api.services.redis.xlen("spinbot:plane:control") == 1


def test_help_names_values_in_capitals_and_flags_without_a_type() -> None:
    commands = ["up", "api", "executor", "submit", "plan", "evaluate", "chat", "manifest"]
    top = runner.invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    assert "..." not in top.split("Commands:")[1], top  # each command's one-line summary whole, not cut
    for command in commands:
        text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80"}).output
        assert "<bool>" not in text and "--verbose" in text or command == "manifest", text
        assert "<str>" not in text.split("Options:")[-1], text  # an option's value is named: --host HOST


def test_request_lines_only_with_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    """`spinbot up` (and `api`) log at INFO, but a line per HTTP request (uvicorn's access log, httpx) only with -v,
    as the README says; `up -v` hands -v to the API and the executors it starts."""
    import logging

    from shell.cli import _setup

    monkeypatch.setenv("SPINBOT_REDIS_URL", "redis://x")
    monkeypatch.setenv("SPINBOT_DATABASE_URL", "postgresql://x")
    for name in ("uvicorn.access", "httpx"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    _setup(False)  # a server: INFO on the root logger, the per-request loggers held at WARNING
    assert logging.getLogger("uvicorn.access").level == logging.WARNING
    assert logging.getLogger("httpx").level == logging.WARNING
    for name in ("uvicorn.access", "httpx"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    _setup(True)  # -v: they follow the root logger (DEBUG)
    assert logging.getLogger("uvicorn.access").level == logging.NOTSET

    from shell.up import child_args

    assert child_args(False)[0] == ("api",) and all(args[-1] == "-v" for args in child_args(True))
