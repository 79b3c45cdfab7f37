"""What a chat turn says: titles, plan summaries, progress lines and final answers with signed links."""

from __future__ import annotations

import json
import re
from typing import Any

from conversation.services import Services
from conversation.views import artifact_label, artifact_link, artifacts_in_graph, job_page_link
from spinbot.expectations import Finding, compare
from spinbot.graph import Graph
from spinbot.queue import JobState
from spinbot.units import duration_text, kind_text, size_text

#: How a reviewed plan's message ends until Run; Run replaces it with running_note (repo.link_job).
REVIEW_ASK = "\n\nPress **Run** to start it, or say what to change."


def running_note(job_id: str) -> str:
    """How a turn's message ends while its job runs (until the final answer replaces the message)."""
    return f"\n\nRunning as job `{job_id}`…"


_JOB_LINK = re.compile(r"/jobs/([0-9a-f]{32})\b")


def title_of(message: str) -> str:
    words = message.strip().split()
    title = " ".join(words[:8])
    return title + ("…" if len(words) > 8 else "")


def last_job_id(history: list[dict[str, Any]]) -> str | None:
    for m in reversed(history):
        if m.get("job_id"):
            return str(m["job_id"])
        if m.get("role") == "assistant" and (found := _JOB_LINK.findall(str(m.get("content", "")))):
            return str(found[-1])
    return None


_JSON_BLOCK = re.compile(r"```json\s*(\{.*?\})\s*```", re.S)


def shown_graph(text: str) -> dict[str, Any] | None:
    """The langgraph.v1 graph an earlier answer showed (spinbot-plan prints it as a JSON block)."""
    for block in reversed(_JSON_BLOCK.findall(text)):
        try:
            doc = json.loads(block)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("schema") == "langgraph.v1" and isinstance(doc.get("nodes"), list):
            return doc
    return None


def plan_summary(graph: Graph, result: Any) -> str:
    steps = "\n".join(f"{i}. **{n.name or n.id}**: `{n.service}` on the {n.plane} plane"
                      for i, n in enumerate(graph.nodes, 1))
    head = "I planned this:"  # how it was read (no-LLM mode) is in result.message, said once per conversation
    est = ""
    verdict = result.verdict
    if verdict is not None and verdict.estimate is not None:
        est = f"\n\nEstimated time: {verdict.estimate.summary or duration_text(verdict.estimate.duration_s)}."
    note = f"\n\n{result.message}" if getattr(result, "message", None) else ""
    return f"{head}\n\n{steps}{est}{note}"


def job_page(base_url: str, job_id: str, services: Services) -> str:
    """The job's page, signed: it opens read-only without an API key (Open WebUI users have none)."""
    return job_page_link(base_url, job_id, services.links)


def progress_line(state: JobState, base_url: str, services: Services) -> str:
    running = [n for n in state.graph.get("nodes", []) if n.get("status") == "running"]
    now = f" Now running: {', '.join(n.get('name') or n['id'] for n in running)}." if running else ""
    return (f"Job `{state.id}` is still {state.status}: {state.progress * 100:.0f}% done.{now} "
            f"Follow it at {job_page(base_url, state.id, services)}")


#: How an answer starts when the results differ from the request (clients may look for it).
DONE_BUT = "Done, but"


def verdict(findings: list[Finding], ran: str) -> list[str]:
    """The answer's first line(s): 'Done: <ran>' when the checked results match the request, else
    'Done, but <what differs, with the measured figures>', one bullet per difference when several."""
    misses = [f.message for f in findings if f.kind == "miss"]
    if not misses:
        return [f"Done: {ran}"]
    if len(misses) == 1:
        return [f"{DONE_BUT} {misses[0]}. {ran}"]
    return [f"{DONE_BUT} {len(misses)} things differ from what you asked. {ran}", *(f"- {m}" for m in misses)]


def findings_lines(findings: list[Finding]) -> list[str]:
    """Re-runs and checks that could not be made, said after the first line."""
    lines = [f"- Refined: {f.message}" for f in findings if f.kind == "refined"]
    return lines + [f"- Not checked: {f.message}" for f in findings if f.kind == "not_checked"]


def reused_nodes(artifacts: list[dict[str, Any]], job_id: str) -> set[str]:
    """Nodes the node cache answered: every artifact they output lives in an earlier job's folder."""
    mine: dict[str, bool] = {}
    for a in artifacts:
        own = str(a["key"]).startswith(f"jobs/{job_id}/")
        mine[a["node"]] = mine.get(a["node"], False) or own
    return {node for node, own in mine.items() if not own}


def answer_for(state: JobState, job_id: str, base_url: str, services: Services) -> str:
    """The final answer in markdown: what was done, artifacts as absolute signed links, images inline."""
    if not state.terminal:
        return (f"The job is taking longer than this answer can wait ({state.progress * 100:.0f}% done); "
                f"it keeps running. Follow it and get the results at {job_page(base_url, job_id, services)}")
    nodes = state.graph.get("nodes", [])
    if state.status == "cancelled":
        return f"Job `{job_id}` was cancelled. Details: {job_page(base_url, job_id, services)}"
    if state.status == "failed":
        failed = [n for n in nodes if n.get("status") == "failed"]
        why = "; ".join(f"**{n.get('name') or n['id']}** ({n['service']}): {(n.get('error') or {}).get('message', '')}"
                        for n in failed) or (state.error or {}).get("message", "unknown error")
        hints = {str(h) for n in failed if (h := (n.get("error") or {}).get("hint"))}
        return (f"The job failed: {why}." + (f" {' '.join(sorted(hints))}" if hints else "")
                + f"\n\nDetails: {job_page(base_url, job_id, services)}")
    found = artifacts_in_graph(state.graph)
    reused = reused_nodes(found, job_id)
    ran = len(nodes) - len(reused)
    steps = f"{ran} step{'' if ran == 1 else 's'} ran"
    if reused:
        again = f"reused from an earlier job ({', '.join(sorted(reused))})"
        steps = (f"{steps}, {len(reused)} {again}" if ran else
                 f"{len(reused)} step{'' if len(reused) == 1 else 's'} {again}")
    findings = compare(state.graph)
    lines = verdict(findings, f"{steps} ({', '.join(dict.fromkeys(n['service'] for n in nodes))}).")
    lines += findings_lines(findings)
    head = len(lines)
    steps_named = {n["id"]: n.get("name") or n["id"] for n in nodes}
    images = []  # each its own paragraph after the list: a line right under a bullet would render inside it
    for a in found:
        url = artifact_link(base_url, a["key"], services.links)
        label = artifact_label(steps_named.get(a["node"], a["node"]), str(a.get("contentType", "")))
        label += " (reused)" if a["node"] in reused else ""
        ctype = str(a.get("contentType", ""))
        if ctype.startswith("image/"):
            images.append(f"![{label}]({url})")
        else:
            size = f", {size_text(a['size'])}" if a.get("size") else ""
            lines.append(f"- [{label}]({url}) ({kind_text(ctype, article=False)}{size})")
    texts = [(n, k, v) for n in nodes for k, v in (n.get("output") or {}).items()
             if isinstance(v, str) and k in ("title", "text", "narration")]
    if texts and len(lines) == head and not images:
        lines += [f"- **{n.get('name') or n['id']}** {k}: {v[:500]}" for n, k, v in texts[:5]]
    lines += [f"\n{image}" for image in images]
    lines.append(f"\nJob page: {job_page(base_url, job_id, services)}")
    return "\n".join(lines)
