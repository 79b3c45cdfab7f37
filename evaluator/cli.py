"""`spinbot evaluate FILE`: the verdict on a graph, readable; the manifest is the live one when Redis answers."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evaluator.core import evaluate
from evaluator.model import Verdict
from spinbot import capabilities
from spinbot.manifest import MergedManifest
from spinbot.settings import Settings

log = logging.getLogger(__name__)


def committed_manifest() -> MergedManifest:
    """manifests/control.json + gpu.json merged: what the code declares, whether or not it runs now."""
    return capabilities.committed_manifest()


async def current_manifest(settings: Settings) -> tuple[MergedManifest, str]:
    """The live manifest when Redis is reachable and an executor is up, else the committed one; and which."""
    if settings.redis_url:
        import redis.asyncio as aioredis
        import redis.exceptions

        from spinbot.capabilities import live_manifest

        client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=1)
        try:
            live = await asyncio.wait_for(live_manifest(client), timeout=3)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as e:
            log.info("no live manifest (%s); using the committed manifests", e)
        else:
            if live.services:
                return live, "live"
        finally:
            await client.aclose()
    return committed_manifest(), "committed"


def render(verdict: Verdict, console: Console) -> None:
    """The nodes, the findings and the estimate as tables."""
    if verdict.graph is not None:
        nodes = Table(title=f"graph {verdict.graph.workflow_id}", show_lines=False)
        for col in ("id", "service", "plane", "weight", "inputs from"):
            nodes.add_column(col)
        preds = verdict.graph.predecessors()
        for n in verdict.graph.nodes:
            est = verdict.estimate.by_node.get(n.id) if verdict.estimate else None
            weight = f"{n.progress_weight:.3f}" if n.progress_weight else "-"
            label = n.id + (f" (~{est:g}s)" if est is not None else "")
            nodes.add_row(label, n.service, n.plane, weight, ", ".join(sorted(preds.get(n.id, ()))) or "-")
        console.print(nodes)
    if verdict.findings:
        table = Table(title="findings")
        for col in ("severity", "code", "node", "message", "hint"):
            table.add_column(col, overflow="fold")
        for f in verdict.findings:
            style = "red" if f.severity == "error" else "yellow"
            table.add_row(f"[{style}]{f.severity}[/]", f.code, f.node or "-", f.message, f.hint)
        console.print(table)
    if verdict.estimate is not None:
        e = verdict.estimate
        console.print(
            f"estimate: {e.summary or f'~{e.duration_s:g} s'} wall time, {e.gpu_s:g} GPU-seconds, "
            f"peak memory {e.peak_memory_mb} MB"
        )
    status = "[green]approved[/]" if verdict.ok else f"[red]rejected[/] ({len(verdict.errors)} error(s))"
    console.print(f"verdict: {status}, {len(verdict.warnings)} warning(s)")


def evaluate_command(settings: Settings, file: Path) -> int:
    """Evaluate FILE; 0 when approved (warnings allowed), 1 on errors, 2 when FILE is not JSON."""
    console = Console()
    try:
        doc = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        console.print(f"[red]cannot read {file}: {e}[/]")
        return 2
    manifest, source = asyncio.run(current_manifest(settings))
    console.print(f"manifest: {source} ({len(manifest.available(include_hidden=True))} services available)")
    # Against the live manifest, a declared service whose plane has no executor now waits (a warning), as in the API.
    verdict = evaluate(doc, manifest, declared=committed_manifest() if source == "live" else None)
    render(verdict, console)
    return 0 if verdict.ok else 1
