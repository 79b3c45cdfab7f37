"""Every shell command in README.md and docs/ is run here, as written, against a started service (an API on a
loopback port, both planes' executors, the embedded defaults: no LLM), or is listed below with why it cannot
run in a test. A command added to the docs that is neither fails `test_every_command_is_run_or_says_why`.

As written means: each ```sh block's runnable commands in order, in a fresh directory holding a copy of
`examples/`, under `bash -eo pipefail`; the service's address replaces `localhost:8000` (and `:8100`), a job of
the caller's replaces `JOB_ID`, `spinbot` is this interpreter's, and curl gets `--fail-with-body` so an HTTP
error fails the command.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import LiveAPI

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Commands a test cannot run, and why; each pattern matches the start of a command.
NOT_HERE: list[tuple[str, str]] = [
    (r"make (up|test)\b", "builds .venv and starts or tests the checkout itself: tests/deploy/test_fresh_clone.py"),
    (r"(cp|for|sed|git) ", "edits a checkout or its .env: a person's step before Docker Compose"),
    (r"docker compose ", "needs Docker: compose.yaml is checked by tests/deploy/test_compose.py"),
    (r"[A-Z_]+=\S", "Open WebUI's environment variables, not a command"),
    (r"(\.venv/bin/)?spinbot up\b", "a long-running server: its refusals are tests/shell/test_up.py, --port is "
                                    "tests/shell/test_cli.py::test_api_on_another_port_and_chat_there_with_clean_output"),
    (r"spinbot manifest\b", "rewrites the checkout's manifests/: tests/tasks/test_manifests.py checks they are "
                            "what it writes"),
    (r"spinbot (evaluate|submit) thumb\.json", "the tutorial's own service (image.thumbnail) exists only once the "
                                              "reader has written it"),
]
RUNNABLE = re.compile(r"^((\.venv/bin/)?spinbot (chat|plan|submit|evaluate)\b|curl )")


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str

    @property
    def runnable(self) -> bool:
        return bool(RUNNABLE.match(self.text)) and self.reason() is None

    def reason(self) -> str | None:
        return next((why for pattern, why in NOT_HERE if re.match(pattern, self.text)), None)


def blocks() -> list[list[Command]]:
    """Each ```sh block of the docs as its commands: continuation lines joined, comments dropped."""
    out = []
    for page in PAGES:
        text = page.read_text()
        for m in re.finditer(r"^( *)```sh\n(.*?)^ *```", text, re.S | re.M):
            first = text[: m.start(2)].count("\n") + 1
            commands: list[Command] = []
            pending, start = "", 0
            for i, raw in enumerate(m.group(2).splitlines()):
                line = raw.strip()
                if not pending:
                    start = first + i
                    if not line or line.startswith("#"):
                        continue
                pending = f"{pending} {line}".strip()
                if pending.endswith("\\"):
                    pending = pending[:-1].rstrip()
                    continue
                if re.match(r"for\b", pending) and not re.search(r"\bdone\b", pending):
                    continue  # a loop goes on to its `done`
                commands.append(Command(str(page.relative_to(ROOT)), start, re.sub(r"\s+#\s.*$", "", pending)))
                pending = ""
            out.append(commands)
    return out


def runnable_blocks() -> list[Any]:
    return [pytest.param([c for c in b if c.runnable], id=f"{b[0].page}:{b[0].line}")
            for b in blocks() if any(c.runnable for c in b)]


def test_every_command_is_run_or_says_why() -> None:
    found = [c for b in blocks() for c in b]
    assert len(found) >= 30, found
    unclassified = [f"{c.page}:{c.line}: {c.text}" for c in found if not c.runnable and c.reason() is None]
    assert unclassified == [], "add each to RUNNABLE or NOT_HERE (with why)"
    ran = [c for c in found if c.runnable]
    assert len(ran) >= 12 and {c.page for c in ran} >= {"README.md", "docs/graph-contract.md", "docs/operations.md"}


def test_the_docs_name_example_graphs_that_exist() -> None:
    """A file a runnable command names exists in the checkout (examples/), or an earlier command writes it."""
    for block in blocks():
        written: set[str] = set()
        for c in (c for c in block if c.runnable):
            written |= set(re.findall(r"(?:-o|--output) (\S+\.json)", c.text))
            for name in re.findall(r"(?<![\w/$-])([\w./-]+\.json)\b", c.text):
                assert name in written or (ROOT / name).is_file(), f"{c.page}:{c.line} names {name}"


def as_run(command: str, base: str, job_id: str) -> str:
    python = shlex.quote(sys.executable)
    text = re.sub(r"^(\.venv/bin/)?spinbot ", f"{python} -m shell.cli ", command)
    text = re.sub(r"\b(https?://)?(localhost|127\.0\.0\.1):(8000|8100)", base, text)
    text = text.replace("JOB_ID", job_id)
    return re.sub(r"^curl ", "curl --fail-with-body ", text)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("block", runnable_blocks())
async def test_the_command_runs(block: list[Command], api: LiveAPI, executors: Any, tmp_path: Path) -> None:
    assert "127.0.0.1:9" in api.settings.ollama_url  # the embedded defaults without an LLM
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    async with api.client() as c:  # a job of the caller's that failed, for JOB_ID (its page, its retry)
        failed = (await c.post("/api/jobs", json={"graph": {"schema": "langgraph.v1", "workflowId": "f", "nodes": [
            {"id": "x", "service": "diag.fail", "plane": "control", "params": {"mode": "permanent"}}]}})).json()
        for _ in range(200):
            if (await c.get(f"/api/jobs/{failed['id']}")).json()["status"] == "failed":
                break
            await asyncio.sleep(0.05)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPINBOT_")} | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SPINBOT_REDIS_URL": str(api.settings.redis_url), "SPINBOT_DATABASE_URL": str(api.settings.database_url),
        "SPINBOT_OLLAMA_URL": api.settings.ollama_url, "SPINBOT_API_URL": api.url,
        "SPINBOT_DATA_DIR": str(tmp_path / ".spinbot"), "KEY": "sk-any", "OPENWEBUI_API_KEY": "sk-any",
        "COLUMNS": "200", "NO_COLOR": "1",
    }
    for command in block:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-eo", "pipefail", "-c", as_run(command.text, api.url, failed["id"]), cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 600)
        assert proc.returncode == 0, (f"{command.page}:{command.line}: {command.text}", out.decode()[-2000:],
                                      err.decode()[-2000:])
