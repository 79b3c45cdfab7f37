"""How jobs, artifacts and conversations look in API answers (JSON-ready dicts)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson

from conversation.auth import LinkSigner
from spinbot.expectations import compare
from spinbot.queue import JobState


def iso(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return datetime.fromtimestamp(value).astimezone().isoformat()


def artifact_path(key: str) -> str:
    return "/api/artifacts/" + quote(key, safe="/")


def signed_path(key: str, links: LinkSigner) -> str:
    """A link that works without a key until it expires (media elements cannot send headers)."""
    return f"{artifact_path(key)}?{links.query(key)}"


def artifact_link(base: str, key: str, links: LinkSigner) -> str:
    """signed_path, absolute (for Open WebUI and other clients elsewhere)."""
    return f"{base.rstrip('/')}{signed_path(key, links)}"


def job_page_path(job_id: str, links: LinkSigner) -> str:
    """The job's page in the web UI, signed: it opens read-only without a key until it expires."""
    return f"/jobs/{quote(job_id, safe='')}?{links.job_query(job_id)}"


def job_page_link(base: str, job_id: str, links: LinkSigner) -> str:
    """job_page_path, absolute (for answers read in Open WebUI and other clients)."""
    return f"{base.rstrip('/')}{job_page_path(job_id, links)}"


def job_links(job_id: str) -> dict[str, str]:
    return {"url": f"/api/jobs/{job_id}", "events_url": f"/api/jobs/{job_id}/events", "page_url": f"/jobs/{job_id}"}


def result_checks(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """The results' checks against the request (spinbot.expectations.compare), as JSON."""
    return [f.to_json() for f in compare(graph)]


def job_from_state(st: JobState) -> dict[str, Any]:
    return {
        "id": st.id, "status": st.status, "progress": st.progress, "plane": st.plane, "version": st.version,
        "pipeline": st.pipeline, "goal": st.graph.get("context", {}).get("goal", ""), "graph": st.graph,
        "checks": result_checks(st.graph) if st.status == "completed" else [],
        "error": st.error, "created": iso(st.created), "updated": iso(st.updated), **job_links(st.id),
    }


def job_from_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "id": row["id"], "status": row["status"], "progress": row["progress"], "plane": row.get("plane"),
        "version": row.get("version", 0), "pipeline": row.get("pipeline"), "goal": row.get("goal", ""),
        "error": row.get("error"), "created": iso(row.get("created_at")), "updated": iso(row.get("updated_at")),
        "finished": iso(row.get("finished_at")), **job_links(row["id"]),
    }
    if "graph" in row:
        out["graph"] = row["graph"]
        out["checks"] = result_checks(row["graph"]) if row["status"] == "completed" else []
    return out


#: The job-hash fields a job list reads from Redis (not the graph: a page stays small).
LIVE_FIELDS = ("status", "progress", "plane", "version", "updated", "error")


def with_live(view: dict[str, Any], live: list[str | None] | None) -> dict[str, Any]:
    """A job_from_row view with the live LIVE_FIELDS values (an HMGET reply) applied, when Redis is not behind.

    Redis holds a job's state while it runs (progress without a new version); Postgres is written on
    transitions, so a row may still say `queued`. A row newer than Redis (version) wins.
    """
    if not live or live[0] is None:
        return view
    status, progress, plane, version, updated, error = live
    if int(version or 0) < int(view.get("version") or 0):
        return view
    out = view | {"status": status, "progress": float(progress or 0.0), "plane": plane or None,
                  "version": int(version or 0), "error": orjson.loads(error) if error else None}
    if updated:
        out["updated"] = iso(float(updated))
    return out


def artifact_label(step: str, content_type: str) -> str:
    """An artifact as people name it (web/static/js/jobview.js artifactLabel says it alike): its step's name,
    and what it is when the step's name does not say it ("Speak the text: audio", "Draw the image"). From the
    step and the content type only, which every view of an artifact has (live events name the file, a
    finished job's graph the output), so a label never changes after a reload."""
    kind = content_type.split("/", 1)[0].lower()
    kind = kind if kind in ("image", "audio", "video") else "file"
    if not step or kind in re.split(r"\W+", step.lower()):
        return step or kind
    return f"{step}: {kind}"


def artifacts_in_graph(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """Artifact descriptors in node outputs, in node order (what a finished job produced)."""
    out = []
    for node in graph.get("nodes", []):
        for name, value in (node.get("output") or {}).items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and "key" in item and "contentType" in item:
                    out.append({"node": node.get("id"), "name": name, "key": item["key"],
                                "contentType": item["contentType"], "size": item.get("size"),
                                "sha256": item.get("sha256")})
    return out


def message_view(row: dict[str, Any], links: LinkSigner) -> dict[str, Any]:
    attachments = [a | {"url": signed_path(a["key"], links)} for a in row.get("attachments") or [] if "key" in a]
    return {
        "id": row["id"], "role": row["role"], "content": row["content"], "job_id": row.get("job_id"),
        "graph": row.get("graph"), "attachments": attachments,
        "metadata": row.get("metadata") or {}, "created": iso(row.get("created_at")),
    }


def conversation_view(row: dict[str, Any]) -> dict[str, Any]:
    out = {"id": row["id"], "title": row["title"], "created": iso(row.get("created_at")),
           "updated": iso(row.get("updated_at"))}
    if "message_count" in row:
        out["message_count"] = row["message_count"]
    return out
