"""`spinbot api` as its own process for the benches, on a given Redis, Postgres, data dir and port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx


def start_api(redis_url: str, database_url: str, data_dir: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    """Start the API (no API keys, loopback) and return it once /health answers (200, or 503 while a plane is
    missing). `settings`: extra SPINBOT_* values, e.g. MAX_JOBS_PER_KEY="4000". Its log is data_dir/api.log.
    Raises RuntimeError with the log when it does not answer within 90 s."""
    env = {**os.environ, "SPINBOT_REDIS_URL": redis_url, "SPINBOT_DATABASE_URL": database_url,
           "SPINBOT_DATA_DIR": str(data_dir), "SPINBOT_PORT": str(port), "SPINBOT_HOST": "127.0.0.1",
           "SPINBOT_API_KEYS": "", **{f"SPINBOT_{k}": v for k, v in settings.items()}}
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "api.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "shell.cli", "api"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in (200, 503):
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the API did not start: " + (data_dir / "api.log").read_text())
