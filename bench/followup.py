"""A follow-up that changes only the voice: what the node cache saves (issue 15).

Starts Spinbot as a new user does (`spinbot up`, embedded Redis and Postgres, no LLM, a temp data dir),
then through the OpenAI-compatible endpoint asks for a talking head and, in the same conversation,
for the same with a male voice. Prints, per run, the wall time of the request (plan + run + answer)
and each node's time and whether it ran or was reused (from the job's event stream).

    .venv/bin/python bench/followup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from spinbot.embedded import free_port  # noqa: E402

FIRST = ("Make a talking-head video of a presenter saying: \"Tides rise and fall twice a day because "
         "the moon pulls on the oceans, and the sun helps a little.\" Female voice.")
FOLLOW_UP = "Same video, but with a male voice."


def start(tmp: Path, port: int, keys: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPINBOT_DATA_DIR": str(tmp), "SPINBOT_OLLAMA_URL": f"http://127.0.0.1:{free_port()}",
           "SPINBOT_PORT": str(port), "SPINBOT_API_KEYS": ",".join(keys)}
    for name in ("SPINBOT_REDIS_URL", "SPINBOT_DATABASE_URL"):
        env.pop(name, None)
    exe = Path(sys.executable).parent / "spinbot"
    return subprocess.Popen([str(exe), "up", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_ready(base: str, within_s: float = 180) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", params={"ready": 1}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("spinbot up did not become ready")


def ask(c: httpx.Client, messages: list[dict[str, str]]) -> tuple[str, float]:
    started = time.perf_counter()
    r = c.post("/v1/chat/completions", json={"model": "spinbot", "messages": messages}, timeout=600)
    r.raise_for_status()
    return r.json()["choices"][0]["message"]["content"], time.perf_counter() - started


def node_times(c: httpx.Client, answer: str) -> dict[str, tuple[float, bool]]:
    """node id -> (seconds from its first `running` to `completed`, reused?) from the job's events."""
    job_id = answer.split("/jobs/", 1)[1][:32]
    started: dict[str, float] = {}
    out: dict[str, tuple[float, bool]] = {}
    with c.stream("GET", f"/api/jobs/{job_id}/events", timeout=60) as r:
        event_id = "0-0"
        for line in r.iter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            if not line.startswith("data:"):
                continue
            data = json.loads(line[5:])
            node, status = data.get("node"), data.get("status")
            if not node or not status or "service" not in data:
                continue
            t = int(event_id.split("-")[0]) / 1000  # a Redis stream id: milliseconds of the server's clock
            if status == "running":
                started.setdefault(node, float(t))
            elif status == "completed":
                out[f"{node} ({data['service']})"] = (float(t) - started.get(node, float(t)), bool(data.get("reused")))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="conversations (first request + follow-up) to time")
    args = parser.parse_args()
    console = Console()
    firsts, follows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        # one API key per conversation: the node cache is per key, so no run reuses another's outputs
        keys = [f"bench-key-{run}-{os.getpid()}" for run in range(args.runs + 1)]
        proc = start(Path(tmp), port, keys)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {keys[-1]}"}) as warm:
                ask(warm, [{"role": "user", "content": FIRST}])  # the engines' first load is not what is measured
            for run in range(args.runs):
                with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {keys[run]}"}) as c:
                    first, t1 = ask(c, [{"role": "user", "content": FIRST}])
                    follow, t2 = ask(c, [{"role": "user", "content": FIRST},
                                         {"role": "assistant", "content": first},
                                         {"role": "user", "content": FOLLOW_UP}])
                    firsts.append(t1)
                    follows.append(t2)
                    if run == 0:
                        table = Table(title="nodes of the first conversation")
                        for col in ("request", "node", "seconds", "ran or reused"):
                            table.add_column(col)
                        for name, answer in (("first", first), ("follow-up", follow)):
                            for node, (secs, reused) in node_times(c, answer).items():
                                table.add_row(name, node, f"{secs:.2f}", "reused" if reused else "ran")
                        console.print(table)
        finally:
            proc.terminate()
            proc.wait(30)
    table = Table(title=f"talking head, then 'with a male voice' ({args.runs} conversations, wall s per request)")
    for col in ("request", "p50 s", "min s", "max s"):
        table.add_column(col, justify="right" if col != "request" else "left")
    for name, times in (("first", firsts), ("follow-up (voice only)", follows)):
        table.add_row(name, f"{statistics.median(times):.2f}", f"{min(times):.2f}", f"{max(times):.2f}")
    ratio = statistics.median(follows) / statistics.median(firsts)
    table.add_row("follow-up / first", f"{ratio:.2f}", "", "", end_section=True)
    console.print(table)
    console.print(f"target: follow-up <= 0.5 x first: {'met' if ratio <= 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
