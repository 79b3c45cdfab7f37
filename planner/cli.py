"""`spinbot plan "GOAL"`: the plan, its evaluation and how it was made, without running it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from evaluator.cli import current_manifest, render
from planner.agent import plan
from planner.models import PlanRequest
from spinbot.settings import Settings


async def plan_command(settings: Settings, goal: str, output: Path | None) -> int:
    """Print the graph and its evaluation; non-zero only when neither the LLM nor a fixed pipeline made one."""
    console = Console()
    manifest, source = await current_manifest(settings)
    console.print(f"manifest: {source}; model: {settings.ollama_model} at {settings.ollama_url}")

    async def show(event: dict[str, Any]) -> None:
        console.print(f"[dim]planning[/] attempt {event['attempt']} {event['stage']}: {event.get('message', '')}")

    result = await plan(settings, PlanRequest(goal=goal), manifest, show)
    if result.kind == "reply":
        console.print(result.reply or "")
        return 0
    for a in result.attempts:
        found = ", ".join(
            f"{f['code']}@{f.get('node') or '-'}"
            for f in a.get("findings", [])
            if f.get("severity", "error") == "error"
        )
        extra = a.get("error") or found or ""
        via = f", {a['pipeline']}" if a.get("pipeline") else ""
        console.print(f"attempt {a['attempt']} ({a['stage']}{via}): {a.get('outcome')} {extra}")
    if result.verdict is not None:
        render(result.verdict, console)
    console.print(result.message)
    if result.graph is not None and output is not None:
        await asyncio.to_thread(output.write_text, json.dumps(result.graph.to_json(), indent=2) + "\n")
        console.print(f"wrote {output}")
    return 0 if result.approved else 1
