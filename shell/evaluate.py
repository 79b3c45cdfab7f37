"""`spinbot evaluate FILE`: the verdict on a graph, readable, and which manifest it was judged against.

By default against the committed manifests (what this version of Spinbot declares): the same verdict from
any directory. With `--live`, as the API would judge the graph now (`admitted`): the live manifest of the
running executors plus the committed one, the API's limits (only Redis is read: the estimate is the declared
one, not the learned one that conversation.admission.evaluate, and so `spinbot submit`, use).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evaluator.core import evaluate
from evaluator.model import Limits, Verdict
from spinbot import MANIFESTS_DIR, capabilities
from spinbot.errors import TransientError
from spinbot.manifest import MergedManifest
from spinbot.settings import Settings
from spinbot.units import duration_text

log = logging.getLogger(__name__)

EXIT_APPROVED, EXIT_REFUSED, EXIT_BAD_FILE, EXIT_UNAVAILABLE = 0, 1, 2, 3


class NoRunningSpinbot(TransientError):
    code = "no_running_spinbot"


def where(redis_url: str) -> str:
    """A Redis URL without its credentials, for saying which one was read."""
    parts = urlsplit(redis_url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


async def live_manifest_of(settings: Settings) -> MergedManifest:
    """The merged manifest the running executors publish; NoRunningSpinbot when Redis does not answer."""
    import redis.asyncio as aioredis
    import redis.exceptions

    if not settings.redis_url:
        raise NoRunningSpinbot(
            f"no running Spinbot found: no SPINBOT_REDIS_URL, and no `spinbot up` runs from here "
            f"({settings.data_dir.resolve() / 'runtime.json'} does not exist)",
            hint="run this from the directory of `spinbot up`, or set SPINBOT_REDIS_URL (or SPINBOT_DATA_DIR)")
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=1)
    try:
        return await asyncio.wait_for(capabilities.live_manifest(client), timeout=3)
    except (redis.exceptions.RedisError, OSError, TimeoutError) as e:
        raise NoRunningSpinbot(f"Redis at {where(settings.redis_url)} does not answer ({e or type(e).__name__})",
                               hint="start `spinbot up`, or check SPINBOT_REDIS_URL") from None
    finally:
        await client.aclose()


async def admitted(settings: Settings, doc: Any) -> tuple[Verdict, str]:
    """The verdict the API gives this graph now (conversation.admission.evaluate's manifests and limits), and a line
    that says which manifests were used. NoRunningSpinbot when Redis does not answer."""
    live = await live_manifest_of(settings)
    verdict = evaluate(doc, live, Limits.of(settings), declared=capabilities.committed_manifest())
    executors = sum(len(p.executors) for p in live.planes.values())
    source = (f"live, {executors} executor(s) publishing to {where(settings.redis_url or '')}, "
              "with the committed manifests for planes that have none (as the API admits a graph)")
    return verdict, source


async def current_manifest(settings: Settings) -> tuple[MergedManifest, str]:
    """For planning: the live manifest when Redis is reachable and an executor is up, else the committed one."""
    if settings.redis_url:
        try:
            live = await live_manifest_of(settings)
        except NoRunningSpinbot as e:
            log.info("no live manifest (%s); using the committed manifests", e.message)
        else:
            if live.services:
                return live, "live"
    return capabilities.committed_manifest(), "committed"


def render(verdict: Verdict, console: Console) -> None:
    """The nodes, the findings and the estimate as tables."""
    if verdict.graph is not None:
        # Names and codes are never cut inside (no_wrap); only free text wraps, between words.
        nodes = Table(title=f"graph {verdict.graph.workflow_id}", show_lines=False)
        for col in ("id", "service", "plane", "share", "time"):
            nodes.add_column(col, no_wrap=True, justify="right" if col in ("share", "time") else "left")
        nodes.add_column("inputs from")
        preds = verdict.graph.predecessors()
        for n in verdict.graph.nodes:
            est = verdict.estimate.by_node.get(n.id) if verdict.estimate else None
            share = f"{n.progress_weight * 100:.0f} %" if n.progress_weight else "-"
            time = f"~{duration_text(est)}" if est is not None else "-"
            nodes.add_row(n.id, n.service, n.plane, share, time, ", ".join(sorted(preds.get(n.id, ()))) or "-")
        console.print(nodes)
    if verdict.findings:
        table = Table(title="findings")
        for col in ("severity", "code", "node"):
            table.add_column(col, no_wrap=True)
        for col in ("message", "hint"):
            table.add_column(col, overflow="fold", ratio=1)  # a URL longer than the column folds
        for f in verdict.findings:
            style = "red" if f.severity == "error" else "yellow"
            table.add_row(f"[{style}]{f.severity}[/]", f.code, f.node or "-", f.message, f.hint)
        console.print(table)
    if verdict.estimate is not None:
        e = verdict.estimate
        console.print(
            f"estimate: {e.summary or f'about {duration_text(e.duration_s)}'} wall time, "
            + (f"{duration_text(e.gpu_s)} on the GPU, " if e.gpu_s else "")
            + f"peak memory {e.peak_memory_mb} MB"
        )
    errors, warnings = len(verdict.errors), len(verdict.warnings)
    status = "[green]approved[/]" if verdict.ok else f"[red]rejected[/] ({errors} error{'s' * (errors != 1)})"
    console.print(f"verdict: {status}, {warnings} warning{'s' * (warnings != 1)}")


def evaluate_command(settings: Settings, file: Path, *, live: bool = False) -> int:
    """Evaluate FILE; 0 approved (warnings allowed), 1 refused, 2 FILE is not JSON, 3 (--live) no running Spinbot.

    The first line says which manifest was used: the committed one (the same verdict from any directory), or
    with `live` the running executors' as the API would admit the graph now.
    """
    console = Console()
    try:
        doc = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        console.print(f"[red]cannot read {file}: {e}[/]")
        return EXIT_BAD_FILE
    if live:
        try:
            verdict, source = asyncio.run(admitted(settings, doc))
        except NoRunningSpinbot as e:
            console.print(f"[red]error:[/] {escape(e.message)}", highlight=False)
            console.print(f"[dim]hint:[/] {escape(e.advice)}", highlight=False)
            return EXIT_UNAVAILABLE
    else:
        manifest = capabilities.committed_manifest()
        verdict = evaluate(doc, manifest, Limits.of(settings))
        source = (f"committed, {MANIFESTS_DIR}/{{control,gpu}}.json ({len(manifest.available(include_hidden=True))} "
                  "services declared; --live: as the running Spinbot would admit it now)")
    console.print(f"manifest: {source}", highlight=False, markup=False, soft_wrap=True)
    render(verdict, console)
    return EXIT_APPROVED if verdict.ok else EXIT_REFUSED
