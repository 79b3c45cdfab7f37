"""The new user's path: the README's run command in a fresh clone serves /health, runs a pipeline, stops cleanly.

The clone gets a `.venv` made of links to this checkout's virtual environment plus its own Makefile
stamp, so `make up` finds it installed instead of spending minutes on pip; PYTHONPATH points at
the clone so the code that runs is the clone's. Nothing else is arranged: Redis and Postgres are
the private servers `spinbot up` starts, artifacts go to the clone's `.spinbot/`, and the stop is
the SIGINT a terminal's Ctrl-C sends to the whole foreground process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from spinbot import ROOT
from spinbot.embedded import free_port
from tests.deploy.test_dashboard import load_dashboard, metric_names, targets

RUN_COMMAND = "make up"
STARTUP_S = 180.0
JOB_S = 90.0
STOP_S = 60.0


def readme_commands() -> list[str]:
    """Commands in README.md's fenced shell blocks, comments stripped."""
    blocks = re.findall(r"^```(?:sh|bash|shell|console)?\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
    return [
        line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines() if line.split("#")[0].strip()
    ]


def clone(dest: Path) -> Path:
    """`git clone` this repository's committed HEAD, with a linked, already-installed .venv."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True, capture_output=True, timeout=120)
    venv_src = Path(sys.prefix)
    venv = dest / ".venv"
    venv.mkdir()
    for entry in venv_src.iterdir():
        if entry.name != ".installed":
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()  # the Makefile's stamp, newer than the clone's pyproject.toml
    return dest


def session_pids(sid: int) -> list[int]:
    """Live processes in session `sid` (everything `make up` started and did not detach)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # fields after "(comm)": state ppid pgrp session ...
            pids.append(int(stat.parent.name))
    return pids


def processes_in(path: Path) -> list[int]:
    """Processes whose working directory or command line is inside `path` (the clone).

    This finds what left the session too: the embedded Redis and Postgres run in sessions of their own
    and chdir into their data directories under the clone.
    """
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        try:
            cwd = os.readlink(proc / "cwd")
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pid != os.getpid() and (cwd == str(path) or cwd.startswith(f"{path}/") or str(path) in args):
            found.append(pid)
    return found


def port_open(url: str) -> bool:
    host, port = re.search(r"@?([\d.]+):(\d+)/", url).groups()  # type: ignore[union-attr]
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Running:
    base: str
    proc: subprocess.Popen[bytes]
    repo: Path
    log: Path


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    """`make up` in a fresh clone, its output in up.log (printed when the test fails)."""
    repo = clone(tmp_path / "spinbot")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPINBOT_", "MAKE", "MFLAGS"))}
    env |= {"SPINBOT_PORT": str(port), "PYTHONPATH": str(repo)}
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            RUN_COMMAND.split(), cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield Running(f"http://127.0.0.1:{port}", proc, repo, log)
    finally:
        for pid in {*session_pids(proc.pid), *processes_in(repo)}:  # only what this test started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)
        print(log.read_text(errors="replace")[-6000:])


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """/health answers and both planes have a live executor."""
    deadline = time.monotonic() + STARTUP_S
    last: Any = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"`{RUN_COMMAND}` exited with {proc.returncode} before it was ready"
        try:
            r = httpx.get(f"{base}/health", timeout=5)
            last = r.json()
            if r.status_code == 200 and all(last["planes"][p]["executors"] for p in ("control", "gpu")):
                return last
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(1)
    pytest.fail(f"not ready after {STARTUP_S:.0f} s; last /health: {json.dumps(last)[:2000]}")


def run_capabilities(base: str) -> dict[str, Any]:
    r = httpx.post(f"{base}/api/pipelines/capabilities/runs", json={"params": {}}, timeout=30)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + JOB_S
    while time.monotonic() < deadline:
        job = httpx.get(f"{base}/api/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    pytest.fail(f"job {job_id} not finished after {JOB_S:.0f} s: {job}")


def test_readme_names_the_run_command() -> None:
    assert RUN_COMMAND in readme_commands(), f"README.md no longer says `{RUN_COMMAND}`"


@pytest.mark.slow
@pytest.mark.timeout(STARTUP_S + JOB_S + STOP_S + 120)
def test_make_up_from_a_fresh_clone(running: Running) -> None:
    base, proc, repo = running.base, running.proc, running.repo
    health = wait_ready(base, proc)
    assert health["checks"]["redis"]["ok"] and health["checks"]["postgres"]["ok"]
    runtime = json.loads((repo / ".spinbot" / "runtime.json").read_text())
    assert runtime["redis_url"].startswith("redis://127.0.0.1:")  # the embedded servers, not a configured one
    banner = running.log.read_text(errors="replace")
    assert f"{base}/" in banner and f"{base}/v1" in banner, "spinbot up does not say where the UI and /v1 are"
    assert banner.count("(embedded)") == 2, "spinbot up does not say it embedded Redis and Postgres"
    assert "LLM" in banner, "spinbot up does not say whether an LLM is reachable"

    exposed = {f.name for f in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10).text)}
    queried = {
        re.sub(r"_(total|bucket|sum|count|created)$", "", m)
        for _, expr in targets(load_dashboard())
        for m in metric_names(expr)
    }
    assert queried <= exposed, f"the dashboard queries metrics /metrics does not expose: {sorted(queried - exposed)}"

    job = run_capabilities(base)
    assert job["status"] == "completed", json.dumps(job)[:3000]
    nodes = job["graph"]["nodes"]
    assert {n["plane"] for n in nodes} == {"control", "gpu"} and all(n["status"] == "completed" for n in nodes)
    manifest = next(n for n in nodes if n["service"] == "capabilities.get_manifest")["output"]["manifest"]
    assert "gpu.info" in json.dumps(manifest) and "llm.generate_script" in json.dumps(manifest)

    before_stop = running.log.stat().st_size
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground process group
    proc.wait(STOP_S)
    deadline = time.monotonic() + STOP_S
    while (session_pids(proc.pid) or processes_in(repo)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_pids(proc.pid) == [] and processes_in(repo) == [], "processes of `make up` outlived it"
    assert not (repo / ".spinbot" / "runtime.json").exists(), "spinbot up did not finish its shutdown"
    assert not port_open(runtime["redis_url"]) and not port_open(runtime["database_url"])
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/health", timeout=2)
    shutdown = running.log.read_bytes()[before_stop:].decode(errors="replace")
    assert "Traceback" not in shutdown, f"the shutdown was not clean:\n{shutdown[-4000:]}"
