"""`spinbot up` refuses at once, before starting anything, when its port is taken or another `spinbot up`
runs from the same data directory, and a refused one never touches the first's runtime.json."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from spinbot.runtime import lock_file


def up(data_dir: Path, port: int, timeout: float = 30) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPINBOT_")}
    env |= {"SPINBOT_DATA_DIR": str(data_dir), "SPINBOT_OLLAMA_URL": "http://127.0.0.1:9"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "shell.cli", "up", "--port", str(port)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


def test_up_on_a_taken_port_exits_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done, seconds = up(tmp_path / "data", port)
    assert done.returncode == 1, done.stderr
    assert f"port {port} is in use; use --port" in done.stderr
    assert "Spinbot is starting" not in done.stdout  # no URL announced for a server that cannot listen
    assert seconds < 15  # load-bound: it is the interpreter's start, nothing is started or retried
    assert not (tmp_path / "data" / "runtime.json").exists()
    assert not (tmp_path / "data" / "redis").exists() and not (tmp_path / "data" / "postgres").exists()


def test_a_second_up_in_the_same_directory_refuses_and_keeps_the_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    first = {"redis_url": "redis://127.0.0.1:1", "database_url": "postgresql://x@127.0.0.1:2/x",
             "pid": 4242, "api_url": "http://127.0.0.1:8123"}
    (data / "runtime.json").write_text(json.dumps(first))
    fd = os.open(lock_file_of(data), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what the first `spinbot up` holds while it runs
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        done, _ = up(data, port)
    finally:
        os.close(fd)
    assert done.returncode == 1, done.stderr
    assert "already running here (pid 4242, http://127.0.0.1:8123)" in done.stderr
    assert json.loads((data / "runtime.json").read_text()) == first  # untouched


def test_a_stale_runtime_file_does_not_block_a_new_up(tmp_path: Path) -> None:
    """runtime.json left by a killed `spinbot up` (its lock died with it): the next one is not refused for it."""
    from spinbot.runtime import this_directory
    from spinbot.settings import Settings

    settings = Settings(data_dir=tmp_path)
    (tmp_path / "runtime.json").write_text(json.dumps({"pid": 1, "api_url": "http://127.0.0.1:1"}))
    with this_directory(settings):
        assert lock_file(settings).exists()
    assert not (tmp_path / "runtime.json").exists()  # the holder cleans up after itself


def lock_file_of(data: Path) -> Path:
    from spinbot.settings import Settings

    return lock_file(Settings(data_dir=data))


def test_the_banner_names_the_no_llm_mode_by_its_one_name(tmp_path: Path) -> None:
    """With no LLM, `spinbot up`'s banner line calls the mode what the answers call it (no 'fixed pipelines')."""
    from shell.up import ollama_status
    from spinbot.settings import NO_LLM_MODE, Settings

    line = ollama_status(Settings(ollama_url="http://127.0.0.1:9", data_dir=tmp_path))
    assert line.startswith(f"LLM: none, {NO_LLM_MODE}: goals are read by rules"), line
    assert "fixed pipeline" not in line and "error" not in line.casefold(), line
