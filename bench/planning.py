"""Planning quality and cost on a goal set: `python bench/planning.py [--ollama URL --model NAME] [--api URL]`.

Runs every goal in bench/planning_goals.json through the planner and prints one row per goal and
totals: intent-correct (the kind, the services it must and must not have, the exact words, voice
and other expected params; without an LLM, a goal that needs a script step is right answered with no
graph and a message saying the LLM is missing), runnable without an LLM (no llm.* step), read by the model (the model's
answer reached the intent), LLM calls, prompt tokens, seconds.

Without --ollama the planner asks the embedded model (started for the bench, as `spinbot up` does) when
it is installed, else runs with no LLM (rules only; `--no-llm` forces that). With --ollama it asks that
server (real Ollama, or `python -m spinbot.localmodel.server` over any GGUF). With --api it
POSTs each goal to a running Spinbot's /api/plan instead of planning in-process over the committed
manifests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from planner import PlanRequest, plan, trust  # noqa: E402
from spinbot.capabilities import committed_manifest  # noqa: E402
from spinbot.graph import Attachment  # noqa: E402
from spinbot.localmodel import files  # noqa: E402
from spinbot.localmodel.process import ModelServer  # noqa: E402
from spinbot.settings import Settings  # noqa: E402

GOALS = Path(__file__).with_name("planning_goals.json")


SCRIPT = "llm.generate_script"


def check(case: dict[str, Any], result: dict[str, Any], llm: bool = True) -> list[str]:
    """What the result got wrong against the case's expectations (empty: intent-correct).

    A goal that must have a script step can only be planned with an LLM; without one the right answer is no
    graph and a message that says the LLM is missing (as planner docs promise: "writing a script needs the LLM").
    """
    wrong = []
    if not llm and SCRIPT in case["must"]:
        if result.get("graph"):
            return ["planned without the LLM it needs"]
        return [] if "LLM" in (result.get("message") or result.get("reply") or "") else ["no word of the LLM missing"]
    if result["kind"] != case["kind"]:
        return [f"kind {result['kind']}"]
    if case["kind"] == "reply":
        return []
    graph = result.get("graph")
    if case["must"] and graph is None:
        return ["no graph: " + (result.get("message") or "")[:60]]
    nodes = {n["id"]: n for n in (graph or {}).get("nodes", [])}
    services = {n["service"] for n in nodes.values()}
    wrong += [f"missing {s}" for s in case["must"] if s not in services]
    wrong += [f"has {s}" for s in case["must_not"] if s in services]
    for key, value in case["params"].items():
        node, _, param = key.partition(".")
        got = nodes.get(node, {}).get("params", {}).get(param)
        if got != value:
            wrong.append(f"{key}={str(got)[:30]!r}")
    return wrong


def bench_settings(ollama: str | None, model: str, trust_mode: str) -> Settings:
    """Settings for planning in-process: the given Ollama-compatible URL, or an unreachable one (no LLM)."""
    return Settings(ollama_url=ollama or "http://127.0.0.1:9", ollama_model=model, ollama_timeout_s=60,
                    data_dir=Path("/tmp/spinbot-bench"), planner_trust=trust_mode)


async def calibrate_table(settings: Settings, manifest: Any, model: str) -> Table:
    """Measure the model on the trust probes, as the planner does at first use; a table of the scores."""
    started = time.perf_counter()
    measured = await trust.calibrate(settings, manifest)
    scores = Table(title=f"trust in {model}: {measured.probes} probes, {time.perf_counter() - started:.1f} s")
    for f in trust.FIELDS:
        scores.add_column(f)
    scores.add_row(*(f"{measured.scores.get(f, 0):.0%}{' trusted' if f in measured.trusted else ''}"
                     for f in trust.FIELDS))
    return scores


async def plan_in_process(settings: Settings, case: dict[str, Any], manifest: Any) -> dict[str, Any]:
    previous = None
    if case.get("previous"):
        earlier = await plan(settings.model_copy(update={"ollama_url": "http://127.0.0.1:9"}),
                             PlanRequest(goal=case["previous"]), manifest)
        previous = earlier.graph.to_json() if earlier.graph is not None else None
    req = PlanRequest(goal=case["goal"], attachments=[Attachment.model_validate(a) for a in case["attachments"]],
                      previous_graph=previous)
    result = await plan(settings, req, manifest)
    out = result.to_json()
    out["approved"] = result.approved
    return out


async def plan_over_api(client: Any, case: dict[str, Any]) -> dict[str, Any]:
    body = {"goal": case["goal"]}
    r = await client.post("/api/plan", json=body)
    r.raise_for_status()
    out: dict[str, Any] = r.json()
    out["approved"] = out["kind"] == "reply" or bool((out.get("evaluation") or {}).get("ok"))
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ollama", help="Ollama API URL (default: the embedded model when installed, else no LLM)")
    ap.add_argument("--model", default=files.DEFAULT.name)
    ap.add_argument("--no-llm", action="store_true", help="rules only, even where the embedded model is installed")
    ap.add_argument("--api", help="a running Spinbot (plans through POST /api/plan)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--trust", choices=["auto", "rules", "model"], default="auto",
                    help="auto: measure the model on the probe set first (as the planner does at first use)")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        if not args.ollama and not args.no_llm and not args.api and files.installed():
            args.ollama = stack.enter_context(embedded_model()).url
            args.model = files.DEFAULT.name
        await run(args)


@contextlib.contextmanager
def embedded_model() -> Iterator[ModelServer]:
    """The embedded model server (one thread), as `spinbot up` starts it, for the bench's duration."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        server = ModelServer(Path(tmp), files.assemble(root / ".spinbot" / "models")).start()
        try:
            yield server
        finally:
            server.stop()


async def run(args: argparse.Namespace) -> None:
    cases = json.loads(GOALS.read_text())["goals"]
    if args.limit:
        cases = cases[: args.limit]
    settings = bench_settings(args.ollama, args.model, args.trust)
    manifest = committed_manifest()
    console = Console(width=200)
    if args.ollama and args.trust == "auto":
        console.print(await calibrate_table(settings, manifest, args.model))
    client = None
    if args.api:
        import httpx

        client = httpx.AsyncClient(base_url=args.api, timeout=120)
    table = Table(title=f"planning: {'LLM ' + args.model if args.ollama else 'no LLM'} ({len(cases)} goals)")
    for col in ("#", "goal", "correct", "no-LLM runnable", "model read", "calls", "prompt tok", "s", "wrong"):
        table.add_column(col)
    rows = []
    for i, case in enumerate(cases, 1):
        started = time.perf_counter()
        if client is not None:
            result = await plan_over_api(client, case)
        else:
            result = await plan_in_process(settings, case, manifest)
        seconds = time.perf_counter() - started
        wrong = check(case, result, llm=bool(args.ollama or args.api))
        graph = result.get("graph") or {}
        services = {n["service"] for n in graph.get("nodes", [])}
        attempts = result.get("attempts") or []
        calls = sum(1 for a in attempts if a.get("stage") == "intent" and a.get("outcome") not in ("unavailable",))
        read = any(a.get("outcome") == "read" for a in attempts)
        first_ok = any(a.get("outcome") == "read" for a in attempts[:1])
        tokens = sum(int(a.get("prompt_tokens") or 0) for a in attempts)
        runnable = result["kind"] == "reply" or (bool(graph) and result["approved"]
                                                 and not any(s.startswith("llm.") for s in services))
        rows.append({"correct": not wrong, "runnable": runnable, "read": read, "first_ok": first_ok, "calls": calls,
                     "tokens": tokens, "seconds": seconds, "llm_needed": SCRIPT in case["must"]})
        table.add_row(str(i), case["goal"][:44], "yes" if not wrong else "NO", "yes" if runnable else "no",
                      "yes" if read else "-", str(calls), str(tokens), f"{seconds:.2f}", "; ".join(wrong)[:60])
    console.print(table)
    n = len(rows)
    secs = [r["seconds"] for r in rows]
    runnable_goals = [r for r in rows if not r["llm_needed"]]
    totals = Table(title="totals")
    for col in ("goals", "intent-correct", "runnable w/o LLM", "first answer valid (of calls)", "calls/plan",
                "LLM-authored", "prompt tokens p50", "seconds p50", "seconds p90"):
        totals.add_column(col)
    totals.add_row(
        str(n),
        f"{sum(r['correct'] for r in rows)}/{n} ({100 * sum(r['correct'] for r in rows) / n:.0f} %)",
        f"{sum(r['runnable'] for r in runnable_goals)}/{len(runnable_goals)}",
        f"{sum(r['first_ok'] for r in rows)}/{sum(1 for r in rows if r['calls'])}",
        f"{statistics.mean(r['calls'] for r in rows):.2f}",
        f"{sum(r['read'] for r in rows)}/{n}",
        f"{statistics.median(r['tokens'] for r in rows):.0f}",
        f"{statistics.median(secs):.2f}",
        f"{statistics.quantiles(secs, n=10)[-1]:.2f}",
    )
    console.print(totals)
    if client is not None:
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
