"""`spinbot plan "GOAL"`: the plan, its evaluation and how it was made, without running it.

Said once each: whether an LLM reads the goal (never the model's name as if it answered when it cannot),
what planning did (a number only on a second attempt), the graph and its verdict, what the planner did.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from planner.agent import plan
from planner.models import PlanRequest
from shell.evaluate import current_manifest, render
from spinbot.llm import reachable
from spinbot.settings import NO_LLM_MODE, Settings


async def plan_command(settings: Settings, goal: str, output: Path | None, *, console: Console | None = None) -> int:
    """Print the graph and its evaluation; non-zero only when neither the LLM nor a fixed pipeline made one."""
    console = console or Console(soft_wrap=True)  # long lines (URLs, goals) stay whole: the terminal wraps them
    manifest, source = await current_manifest(settings)
    why_not = await reachable(settings)
    llm = (f"LLM: {settings.ollama_model} at {settings.ollama_url}" if why_not is None
           else f"LLM: none, {NO_LLM_MODE}: the goal is read by rules")
    console.print(f"manifest: {source}; {llm}", highlight=False, markup=False)

    async def show(event: dict[str, Any]) -> None:
        stage = event.get("stage")
        if stage == "done" or (stage == "reading" and why_not is not None):
            return  # the outcome is printed below; no "asking <model>" when it cannot be asked
        attempt = f" (attempt {event['attempt']})" if int(event.get("attempt") or 0) > 1 else ""
        console.print(f"[dim]planning{attempt}:[/] {escape(str(event.get('message') or stage or ''))}",
                      highlight=False)

    result = await plan(settings, PlanRequest(goal=goal), manifest, show)
    if result.kind == "reply":
        console.print(result.reply or "", markup=False, highlight=False)
        return 0
    if result.verdict is not None:
        render(result.verdict, console)
    console.print(result.message, markup=False, highlight=False)
    if result.graph is not None and output is not None:
        await asyncio.to_thread(output.write_text, json.dumps(result.graph.to_json(), indent=2) + "\n")
        console.print(f"wrote {output}", markup=False, highlight=False)
    return 0 if result.approved else 1
