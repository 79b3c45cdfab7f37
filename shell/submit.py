"""`spinbot submit FILE [--wait]`: run a hand-written graph, optionally following it with progress bars.

The graph is admitted as `POST /api/jobs` admits it (conversation.admission.admit, as the owner `local`): what
the API would refuse with 422 is refused here with the same findings, before anything is queued."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from conversation.admission import admit
from conversation.services import build_services, close_services
from shell.client import STOPPED, api_url, completed_share, stopped_text
from spinbot.errorcodes import CODES
from spinbot.errors import Problem, SpinbotError, outage
from spinbot.graph import Graph
from spinbot.graphstate import validate_structure
from spinbot.queue import TERMINAL_JOB, Job
from spinbot.settings import Settings
from spinbot.units import size_text

log = logging.getLogger(__name__)

EXIT_OK, EXIT_JOB_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
LOCAL_OWNER = "local"  # the owner of the jobs the command line submits


class BadInput(SpinbotError):
    code = "bad_input"


def load_graph(file: Path) -> Graph:
    """Parse and check a graph file; BadInput names the problem and where."""
    try:
        doc = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise BadInput(f"{file} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except OSError as e:
        raise BadInput(f"cannot read {file}: {e.strerror}") from None
    try:
        graph = Graph.model_validate(doc)
    except ValidationError as e:
        problems = "\n".join(
            f"  {'.'.join(map(str, x['loc'])) or '(document)'}: {x['msg']}" for x in e.errors()[:20]
        )
        raise BadInput(f"{file} is not a langgraph.v1 graph:\n{problems}",
                       hint="see manifests/langgraph.v1.schema.json") from None
    validate_structure(graph)
    return graph


def refused(problem: Problem) -> BadInput:
    """Admission's 422 graph_refused as the API's answer lists it: each error finding, its node, the first hint."""
    errors = [f for f in problem.extra.get("findings", []) if f.get("severity") == "error"]
    lines = "\n".join(f"  {f['code']}" + (f" (node {f['node']})" if f.get("node") else "") + f": {f['message']}"
                      for f in errors[:20])
    return BadInput(f"the evaluator refused the graph (the API would answer 422):\n{lines}",
                    hint=problem.advice)


async def submit_command(settings: Settings, file: Path, *, wait: bool) -> int:
    """Exit code: 0 submitted (or, with wait, completed), 1 job failed/cancelled, 2 bad input or refused,
    3 no Redis/Postgres (or, for a refusal worth retrying such as the job limit, try later)."""
    console = Console(stderr=True, soft_wrap=True)
    try:
        graph = load_graph(file)
    except SpinbotError as e:
        _print_error(console, e)
        return EXIT_BAD_INPUT
    if not settings.redis_url or not settings.database_url:
        console.print("[red]error:[/] no Redis and Postgres to submit to: start `spinbot up` or set "
                      "SPINBOT_REDIS_URL and SPINBOT_DATABASE_URL")
        return EXIT_UNAVAILABLE
    try:
        services = await build_services(settings, who="spinbot submit")
    except Exception as e:
        if outage(e) is None and not isinstance(e, OSError):
            raise
        console.print(f"[red]error:[/] cannot reach Redis/Postgres ({e}): is `spinbot up` running? "
                      "check SPINBOT_REDIS_URL / SPINBOT_DATABASE_URL")
        return EXIT_UNAVAILABLE
    try:
        try:
            await services.queue.ensure_groups()
            admitted = await admit(services, graph, LOCAL_OWNER)  # as POST /api/jobs admits a graph
        except Problem as e:
            _print_error(console, refused(e) if e.code == "graph_refused" else e)
            return EXIT_UNAVAILABLE if CODES[e.code].retryable else EXIT_BAD_INPUT
        for f in admitted.verdict.warnings:
            console.print(f"[yellow]note:[/] {escape(f.message)}", highlight=False)
        print(admitted.job_id)
        if not wait:
            return EXIT_OK
        return await follow(admitted.job, admitted.graph, console, base=api_url(settings))
    finally:
        await close_services(services)


def _print_error(console: Console, e: SpinbotError) -> None:
    console.print(f"[red]error:[/] {e.message}", markup=True, highlight=False)
    console.print(f"[dim]hint:[/] {e.advice}", highlight=False)


async def follow(job: Job, graph: Graph, console: Console, *, base: str = "") -> int:
    """Live progress bars (the job and each node) from its events (spinbot.queue.Job.events) until it finishes.

    A failed or cancelled job's bar ends at the share of the work that completed, and a node that did not
    complete keeps the progress it reached: a bar never says 100 % for work that was not done.
    """
    bars = Progress(TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                    TextColumn("{task.fields[status]:<10}"), TimeElapsedColumn(), console=console)
    job_bar = bars.add_task(f"job {job.id[:8]}", total=1.0, status="queued")
    node_bars: dict[str, TaskID] = {
        n.id: bars.add_task(escape(f"  {n.id} [{n.plane}]"), total=1.0, status=n.status) for n in graph.nodes
    }
    weights = {n.id: n.progress_weight or 1.0 for n in graph.nodes}
    status: dict[str, str] = {}
    final: dict[str, Any] = {}
    with bars:
        async for ev in job.events():  # ends with the job's terminal event, or when the job is gone
            if ev is None:
                continue
            if ev.type == "job":
                done = ev.data.get("progress", 0.0)
                if ev.data["status"] in STOPPED:
                    reached = max(bars.tasks[job_bar].completed, done)
                    done = completed_share(weights, status)
                    console.print(escape(f"job {stopped_text(ev.data['status'], done, reached, status)}"),
                                  highlight=False)
                bars.update(job_bar, completed=done, status=ev.data["status"])
                if ev.data["status"] in TERMINAL_JOB:
                    final = ev.data
            elif ev.type == "node" and ev.data["node"] in node_bars:
                status[ev.data["node"]] = ev.data["status"]
                # a node the node cache answered ran nothing: its bar says so, as the web UI's badge does
                reused = ev.data["status"] == "completed" and ev.data.get("reused")
                bars.update(node_bars[ev.data["node"]], status="reused" if reused else ev.data["status"])
                if ev.data["status"] == "completed":
                    bars.update(node_bars[ev.data["node"]], completed=1.0)
            elif ev.type == "progress" and ev.data["node"] in node_bars:
                bars.update(node_bars[ev.data["node"]], completed=ev.data["progress"])
                bars.update(job_bar, completed=ev.data.get("job_progress", 0.0))
    state = await job.state()
    if not final and state is None:
        console.print(f"[red]error:[/] job {job.id} disappeared from Redis")
        return EXIT_JOB_FAILED
    return _summary(console, job.id, state, final, base)


def _is_artifact(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("key"), str) and "contentType" in value


def _short(value: Any, found: dict[str, tuple[str, dict[str, Any]]], where: str) -> Any:
    """The value with each artifact descriptor replaced by its file name (collected in `found`, once per key)."""
    if _is_artifact(value):
        found.setdefault(value["key"], (where, value))
        return value["key"].rsplit("/", 1)[-1]
    if isinstance(value, dict):
        return {k: _short(v, found, f"{where} {k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v, found, where) for v in value]
    return value


def _summary(console: Console, job_id: str, st: Any, final: dict[str, Any], base: str = "") -> int:
    status = final["status"]
    artifacts: dict[str, tuple[str, dict[str, Any]]] = {}
    if st is not None:
        for n in st.graph["nodes"]:
            if n.get("error"):
                console.print(f"  [red]{n['id']}[/]: {n['error'].get('message')}", highlight=False)
            elif n.get("output") is not None:
                text = json.dumps(_short(n["output"], artifacts, n["id"]), ensure_ascii=False)
                console.print(f"  {n['id']}: {text[:200]}{'...' if len(text) > 200 else ''}", highlight=False,
                              markup=False)
    if artifacts:  # each once, as a link
        console.print("artifacts:")
        for key, (where, a) in artifacts.items():
            # the node cache's answer lives in the job that made it: the link says whose folder it points into
            made = key.split("/")[1] if key.startswith("jobs/") and not key.startswith(f"jobs/{job_id}/") else None
            reused = f", reused from job {made[:8]}" if made else ""
            console.print(f"  {where} ({a['contentType']}, {_size(a.get('size'))}{reused}): {base}/api/artifacts/{key}",
                          highlight=False, markup=False, soft_wrap=True)
    color = {"completed": "green", "failed": "red"}.get(status, "yellow")
    console.print(f"[{color}]job {status}[/]" + (f": {final['error']['message']}" if final.get("error") else ""),
                  highlight=False)
    return EXIT_OK if status == "completed" else EXIT_JOB_FAILED


def _size(n: Any) -> str:
    return size_text(n) if isinstance(n, int | float) else "size unknown"
