"""`spinbot chat "GOAL"`: talk to a running Spinbot API, with live planning and progress bars."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from spinbot.settings import Settings
from spinbot.units import estimate_text, shorten

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_AUTH, EXIT_UNREACHABLE = 0, 1, 2, 3


def api_url(settings: Settings) -> str:
    if settings.api_url:
        return settings.api_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def api_key(settings: Settings) -> str | None:
    if settings.api_key:
        return settings.api_key.get_secret_value()
    return settings.api_keys[0] if settings.api_keys else None


@dataclass
class SSE:
    id: str | None
    event: str
    data: Any


async def read_events(response: httpx.Response) -> AsyncIterator[SSE]:
    """Server-sent events from a streaming response (comments are keep-alives)."""
    event_id: str | None = None
    event, data = "message", list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                raw = "\n".join(data)
                try:
                    payload: Any = json.loads(raw)
                except ValueError:
                    payload = raw
                yield SSE(event_id, event, payload)
            event, data = "message", []
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                event_id = value


@dataclass
class View:
    """What the terminal shows: planning lines, a bar for the job and one per node."""

    console: Console
    progress: Progress
    job_bar: TaskID | None = None
    node_bars: dict[str, TaskID] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)  # node -> progressWeight, from the plan
    node_status: dict[str, str] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    answer: str = ""
    job_id: str | None = None
    status: str | None = None
    error: str | None = None

    def on(self, ev: SSE) -> None:
        d = ev.data if isinstance(ev.data, dict) else {}
        handler = getattr(self, f"on_{ev.event}", None)
        if handler is not None:
            handler(d)

    def on_planning(self, d: dict[str, Any]) -> None:
        if d.get("stage") == "done":
            return  # what the planner did ends the answer, printed once at the end
        # Only a second attempt (a replan) is numbered; the message says what is happening.
        attempt = f" (attempt {d['attempt']})" if int(d.get("attempt") or 0) > 1 else ""
        self.console.print(f"[dim]planning{attempt}: {escape(str(d.get('message') or d.get('stage') or ''))}[/]",
                           highlight=False)

    def on_plan(self, d: dict[str, Any]) -> None:
        nodes = d.get("graph", {}).get("nodes", [])
        est = (d.get("evaluation") or {}).get("estimate") or {}
        self.console.print(f"[bold]plan[/] ({len(nodes)} steps" +
                           (f", {estimate_text(est)}" if est.get("duration_s") is not None else "") + ")")
        for n in nodes:
            self.console.print(f"  • {n.get('name') or n['id']}: {n['service']} [dim]({n['plane']})[/]")
            self.node_bars[n["id"]] = self.progress.add_task(f"{n['id']} ({n['service']})", total=1.0)
            self.weights[n["id"]] = float(n.get("progressWeight") or 1.0)

    def on_job(self, d: dict[str, Any]) -> None:
        self.job_id = d.get("job_id") or self.job_id
        self.status = d.get("status", self.status)
        if self.job_bar is None:
            self.job_bar = self.progress.add_task(f"[bold]job {self.job_id}", total=1.0)
        progress = float(d.get("progress") or 0)
        description = f"job {self.status}"
        if self.status in STOPPED and self.weights:
            reached = max(self.progress.tasks[self.job_bar].completed, progress)
            progress = completed_share(self.weights, self.node_status)
            description = f"job {stopped_text(self.status, progress, reached, self.node_status)}"
        self.progress.update(self.job_bar, completed=progress, description=f"[bold]{escape(description)}")

    def on_node(self, d: dict[str, Any]) -> None:
        self.node_status[str(d.get("node"))] = str(d.get("status"))
        bar = self.node_bars.get(str(d.get("node")))
        if bar is not None and d.get("status") == "completed":
            self.progress.update(bar, completed=1.0, description=f"{d['node']} completed")
        elif bar is not None and d.get("status") in ("skipped", "cancelled", "failed"):
            reached = self.progress.tasks[bar].completed  # the bar keeps what it did, and says where it stopped
            at = f" at {reached * 100:.0f} %" if 0 < reached < 1 else ""
            self.progress.update(bar, description=escape(f"{d['node']} {d['status']}{at}"))
        if d.get("status") == "failed" and isinstance(d.get("error"), dict):
            self.console.print(f"[red]{d['node']} failed:[/] {d['error'].get('message', '')}")

    def on_progress(self, d: dict[str, Any]) -> None:
        bar = self.node_bars.get(str(d.get("node")))
        if bar is not None:
            msg = f" {d['message']}" if d.get("message") else ""
            self.progress.update(bar, completed=float(d.get("progress") or 0),
                                 description=escape(shorten(f"{d['node']}{msg}", 60)))
        if self.job_bar is not None and d.get("job_progress") is not None:
            self.progress.update(self.job_bar, completed=float(d["job_progress"]))

    def on_artifact(self, d: dict[str, Any]) -> None:
        self.artifacts.append(d)

    def on_message(self, d: dict[str, Any]) -> None:
        self.answer += d.get("delta", "")

    def on_error(self, d: dict[str, Any]) -> None:
        self.error = d.get("detail") or "error"
        self.console.print(f"[red]error:[/] {self.error}" + (f" [dim]({d['hint']})[/]" if d.get("hint") else ""))

    def on_done(self, d: dict[str, Any]) -> None:
        self.status = d.get("status") or self.status


#: Jobs that ended without finishing: their bar shows the share of the work that completed.
STOPPED = ("failed", "cancelled")


def completed_share(weights: dict[str, float], status: dict[str, str]) -> float:
    """The weighted share of nodes that completed (what a failed or cancelled job got done)."""
    total = sum(weights.values())
    return sum(w for n, w in weights.items() if status.get(n) == "completed") / total if total else 0.0


def stopped_text(status: str, done: float, reached: float, status_of: dict[str, str]) -> str:
    """A stopped job's bar text: what finished and what stopped, so its bar ending at the finished share
    (`done`, below the `reached` progress) reads as what was kept, not as work going backwards:
    "cancelled: 33 % finished (stopped at 67 %); finished: a; cancelled: b"."""
    text = f"{status}: {done * 100:.0f} % finished"
    if reached > done + 0.005:
        text += f" (stopped at {reached * 100:.0f} %)"
    finished = [n for n, st in status_of.items() if st == "completed"]
    stopped = [f"{st}: {n}" for n, st in status_of.items() if st in ("failed", "cancelled")]
    return "; ".join([text, *([f"finished: {', '.join(finished)}"] if finished else []), *stopped])


_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def terminal_text(markdown: str) -> str:
    """An answer's markdown as a terminal shows it: links as "label: URL" (whole, to click or copy)."""
    text = _IMAGE.sub(lambda m: f"{m.group(1) or 'image'}: {m.group(2)}", markdown)
    text = _LINK.sub(lambda m: m.group(2) if m.group(1) == m.group(2) else f"{m.group(1)}: {m.group(2)}", text)
    return text.replace("**", "").replace("`", "")


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return f"{body.get('detail', '')} ({body['hint']})" if body.get("hint") else str(body.get("detail", body))


async def chat_command(settings: Settings, goal: str, *, console: Console | None = None) -> int:
    """Send the goal, show planning and progress live, print the answer and artifact links."""
    console = console or Console(soft_wrap=True)  # long URLs stay whole lines: the terminal wraps them
    base, key = api_url(settings), api_key(settings)
    headers = {"Accept": "text/event-stream", **({"Authorization": f"Bearer {key}"} if key else {})}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                        TimeElapsedColumn(), console=console, transient=False)
    view = View(console, progress)
    timeout = httpx.Timeout(10.0, read=None)
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout) as client, \
                client.stream("POST", "/api/chat", json={"message": goal}) as response:
            if response.status_code in (401, 403):
                await response.aread()
                console.print(f"[red]not authorised:[/] {_problem(response)}; set SPINBOT_API_KEY")
                return EXIT_AUTH
            if response.status_code != 200:
                await response.aread()
                console.print(f"[red]the API refused:[/] {response.status_code} {_problem(response)}")
                return EXIT_FAILED
            with progress:
                async for ev in read_events(response):
                    view.on(ev)
    except httpx.ConnectError:
        console.print(f"[red]no Spinbot API at {base}[/]: start it with `spinbot up` (or `spinbot api`), "
                      "or point SPINBOT_API_URL at it")
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        if view.job_id:
            console.print(f"stopped watching; job {view.job_id} keeps running: {base}/jobs/{view.job_id}")
        return EXIT_FAILED
    # The answer names the job page and links the artifacts (signed); say each only where it did not.
    answer = terminal_text(view.answer.strip())
    if answer:
        console.print(answer, markup=False, highlight=False, soft_wrap=True)
    unsaid = [a for a in view.artifacts if str(a.get("key")) not in answer]
    if unsaid:
        console.print("artifacts:", highlight=False)
        for a in unsaid:
            url = f"{base}/api/artifacts/{a.get('key')}"
            console.print(f"  {a.get('node')} {a.get('name')} ({a.get('contentType')}): {url}",
                          markup=False, highlight=False, soft_wrap=True)
    if view.job_id and f"/jobs/{view.job_id}" not in answer:
        console.print(f"job page: {base}/jobs/{view.job_id}", markup=False, highlight=False, soft_wrap=True)
    ok = view.error is None and view.status in (None, "completed")
    return EXIT_OK if ok else EXIT_FAILED
