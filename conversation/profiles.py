"""Profiles: a person's portrait and prepared voice, kept per API key and reused by later goals.

A profile row keeps `assets`, a map kind -> what it keeps of that kind: `portrait` ({key, contentType}:
an upload or a job's image artifact) and `voice` ({key, contentType, job, node, features,
reference_text}: the `voice` artifact of a voice.prepare node). A LoRA joins later as one more kind.
A profile made from a voice sample is `preparing` while its voice.prepare job runs; reading it
settles it (`ready` with the voice, or `failed` with the node's error), so nothing has to watch the job.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

import asyncpg
from pydantic import BeforeValidator, Field

from conversation.services import Services
from conversation.views import iso, signed_path
from planner.pipelines import edges_from_refs
from planner.training import PREPARE, prepare_node, voice_params
from spinbot.errors import Problem, not_found
from spinbot.graph import Attachment, Context, Graph, Node, node_ref
from spinbot.names import name_form, name_key
from spinbot.queue import TERMINAL_JOB
from spinbot.units import kind_text, shorten

#: A name people can type in a goal: a letter or digit first, then letters, digits, spaces, . ' - (no space last)
NAME_RE = re.compile(r"^[^\W_](?:[\w .'-]{0,38}[\w.'-])?$")
#: A profile name as a request field: normalised (spinbot/names.py) before it is checked, on every write.
ProfileName = Annotated[str, BeforeValidator(lambda v: name_form(v) if isinstance(v, str) else v),
                        Field(min_length=1, max_length=40, pattern=NAME_RE.pattern)]


#: Advisory lock class of a key's profiles: writes that move the default flag run one at a time per key,
#: so two at once neither trip the one-default index (a false 409 "name taken") nor leave none.
PROFILES_LOCK = 0x5B1B0F


async def lock_owner(conn: asyncpg.Connection, owner: str) -> None:
    """Hold the owner's profiles lock until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", PROFILES_LOCK, owner)


def new_profile_id() -> str:
    return "p_" + uuid.uuid4().hex[:20]


def name_taken(name: str, field: str) -> Problem:
    return Problem("profile_exists", f"a profile named {name!r} exists already", field=field,
                   hint="choose another name, or delete that profile first")


class Profiles:
    """The profiles table (spinbot/migrations/003_profiles.sql); every read and write is by owner."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, owner: str, name: str, *, default: bool, assets: dict[str, Any],
                     pending_job: str | None = None, jobs: list[str] | None = None) -> dict[str, Any]:
        """A new profile named name_form(name); 409 when the owner has one of that name (by name_key: any case,
        composition or width). The owner's first profile is the default, and so is a new one while the default
        is a failed one (it has no voice); a new default takes the flag from the old one."""
        name = name_form(name)
        async with self.pool.acquire() as conn, conn.transaction():
            await lock_owner(conn, owner)
            usable = await conn.fetchval(
                "SELECT count(*) FROM profiles WHERE owner=$1 AND is_default AND status <> 'failed'", owner)
            default = default or usable == 0
            if default:
                await conn.execute("UPDATE profiles SET is_default=false WHERE owner=$1 AND is_default", owner)
            try:
                row = await conn.fetchrow(
                    "INSERT INTO profiles (id, owner, name, name_key, is_default, assets, status, pending_job, jobs)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
                    new_profile_id(), owner, name, name_key(name), default, assets,
                    "preparing" if pending_job else "ready", pending_job, jobs or [],
                )
            except asyncpg.UniqueViolationError:
                raise name_taken(name, "name") from None
        return dict(row)

    async def has_name(self, owner: str, name: str) -> bool:
        return bool(await self.pool.fetchval(
            "SELECT 1 FROM profiles WHERE owner=$1 AND name_key=$2", owner, name_key(name)))

    async def get(self, profile_id: str, owner: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM profiles WHERE id=$1 AND owner=$2", profile_id, owner)
        return dict(row) if row else None

    async def list(self, owner: str) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT * FROM profiles WHERE owner=$1 ORDER BY is_default DESC, name_key", owner)
        return [dict(r) for r in rows]

    async def delete(self, profile_id: str, owner: str) -> dict[str, Any] | None:
        """The deleted row, or None; when it was the default, the owner's oldest other profile becomes it."""
        async with self.pool.acquire() as conn, conn.transaction():
            await lock_owner(conn, owner)
            row = await conn.fetchrow("DELETE FROM profiles WHERE id=$1 AND owner=$2 RETURNING *", profile_id, owner)
            if row is not None and row["is_default"]:
                await conn.execute(
                    "UPDATE profiles SET is_default=true, updated_at=now() WHERE id = (SELECT id FROM profiles"
                    " WHERE owner=$1 ORDER BY created_at, id LIMIT 1)", owner)
        return dict(row) if row else None

    async def update(self, profile_id: str, owner: str, *, name: str | None, default: bool | None
                     ) -> dict[str, Any] | None:
        """Rename and/or make the default (the old default loses the flag); None if not the owner's; 409 on
        a name the owner already uses. Unsetting the default is not offered: one profile is always "my voice"."""
        name = None if name is None else name_form(name)
        async with self.pool.acquire() as conn, conn.transaction():
            await lock_owner(conn, owner)
            if default:
                await conn.execute("UPDATE profiles SET is_default=false WHERE owner=$1 AND is_default AND id<>$2",
                                   owner, profile_id)
            try:
                row = await conn.fetchrow(
                    "UPDATE profiles SET name=coalesce($3, name), name_key=coalesce($5, name_key),"
                    " is_default=(is_default OR coalesce($4, false)), updated_at=now()"
                    " WHERE id=$1 AND owner=$2 RETURNING *",
                    profile_id, owner, name, default, None if name is None else name_key(name))
            except asyncpg.UniqueViolationError:
                raise name_taken(name or "", "name") from None
        return dict(row) if row else None

    async def finish(self, profile_id: str, *, status: str, assets: dict[str, Any],
                     error: dict[str, Any] | None) -> dict[str, Any] | None:
        """The preparing job ended: its assets (merged) or its error; the pending job is cleared."""
        row = await self.pool.fetchrow(
            "UPDATE profiles SET status=$2, assets = assets || $3::jsonb, error=$4, pending_job=NULL,"
            " updated_at=now() WHERE id=$1 AND pending_job IS NOT NULL RETURNING *",
            profile_id, status, assets, error,
        )
        return dict(row) if row else None


# ---- settling a profile whose voice is being prepared ------------------------------------------


async def job_graph(services: Services, job_id: str, owner: str) -> tuple[str, dict[str, Any]] | None:
    """(status, graph) of the owner's job: Redis while it lives, else the durable record."""
    state = await services.queue.get(job_id)
    if state is not None:
        return (state.status, state.graph) if state.owner == owner else None
    row = await services.store.get_job(job_id, owner)
    return (str(row["status"]), dict(row["graph"])) if row else None


def prepared_voice(job_id: str, node: dict[str, Any]) -> dict[str, Any] | None:
    """The voice asset a completed voice.prepare node made, None if it made none."""
    out = node.get("output") or {}
    voice = out.get("voice")
    if not isinstance(voice, dict) or not isinstance(voice.get("key"), str):
        return None
    features = out.get("features") if isinstance(out.get("features"), dict) else {}
    text = (node.get("params") or {}).get("text")
    return {"key": voice["key"], "contentType": voice.get("contentType", "audio/wav"), "job": job_id,
            "node": node.get("id"), "features": features, "reference_text": text if isinstance(text, str) else ""}


def preparation_error(status: str, node: dict[str, Any] | None) -> dict[str, Any]:
    """Why a profile's voice was not prepared, in the words of the voice.prepare node's error."""
    err = (node or {}).get("error") or {}
    if status == "cancelled":
        message = "the voice preparation job was cancelled"
    elif err.get("message"):
        message = f"the voice sample was refused: {err['message']}"
    else:
        message = "the voice preparation job ended without a prepared voice"
    return {"code": err.get("code") or f"preparation_{status}", "message": message,
            **({"hint": err["hint"]} if err.get("hint") else {})}


async def settle(services: Services, row: dict[str, Any]) -> dict[str, Any]:
    """The profile as it stands: a preparing one whose job ended becomes ready or failed (stored)."""
    job_id = row.get("pending_job")
    if row["status"] != "preparing" or not job_id:
        return row
    found = await job_graph(services, job_id, row["owner"])
    if found is None:  # the job is gone (pruned): nothing will ever fill the voice
        found = ("failed", {})
    status, graph = found
    if status not in TERMINAL_JOB:
        return row
    node = next((n for n in graph.get("nodes", []) if n.get("service") == PREPARE), None)
    voice = prepared_voice(job_id, node) if node and status == "completed" else None
    if voice is not None:
        done = await services_profiles(services).finish(row["id"], status="ready", assets={"voice": voice}, error=None)
    else:
        done = await services_profiles(services).finish(row["id"], status="failed", assets={},
                                                        error=preparation_error(status, node))
    return done or await services_profiles(services).get(row["id"], row["owner"]) or row


def services_profiles(services: Services) -> Profiles:
    """The profiles table on the app's Postgres pool."""
    return Profiles(services.store.pool)


async def owned_profiles(services: Services, owner: str) -> list[dict[str, Any]]:
    """The owner's profiles, each settled."""
    return [await settle(services, r) for r in await services_profiles(services).list(owner)]


async def owned_profile(services: Services, profile_id: str, owner: str) -> dict[str, Any]:
    """The owner's profile, settled; 404 for an absent one and another key's alike."""
    row = await services_profiles(services).get(profile_id, owner)
    if row is None:
        raise not_found("profile", profile_id)
    return await settle(services, row)


async def owned_object(services: Services, owner: str, key: str, field: str, kind: str) -> dict[str, Any]:
    """{key, contentType} of the owner's object of `kind` (image, audio); 404 for another key's, 415 for
    another kind. Uploads were checked by content when they came in (web.attachments.check_content)."""
    meta = await services.repo.artifact(key)
    if meta is None or meta.owner != owner:
        raise Problem("not_found", f"{field} names object {key}, which does not exist", field=field,
                      hint="upload the file first (POST /api/uploads) with the same API key and use its key")
    if not meta.content_type.startswith(f"{kind}/"):
        wanted = "an image" if kind == "image" else "a recording" if kind == "audio" else f"a {kind} file"
        raise Problem("unsupported_attachment",
                      f"the {field.replace('_', ' ')} is not {wanted}: it is {kind_text(meta.content_type)}",
                      field=field,
                      hint="a portrait is a PNG, JPEG or WebP image" if kind == "image"
                      else "a voice sample is a WAV, MP3 or OGG recording of one person speaking")
    return {"key": meta.key, "contentType": meta.content_type}


async def check_save(services: Services, graph: Graph, owner: str) -> dict[str, Any] | None:
    """The profile a graph saves when its job starts (`metadata.profile.save_as`, with `portrait` an attachment
    id): {name, assets}; 409 when the owner has a profile of that name. None when it saves none."""
    meta = graph.metadata.get("profile") or {}
    name = meta.get("save_as") if isinstance(meta, dict) else None
    if name is None:
        return None
    # a graph is written by a program: its name is refused as sent (padding, a final newline), only composed
    if not isinstance(name, str) or name != name.strip() or not NAME_RE.fullmatch(name := name_form(name)):
        raise Problem("invalid_graph", "metadata.profile.save_as is not a profile name",
                      field="metadata.profile.save_as", hint="letters, digits, spaces, . ' - (up to 40)")
    if await services_profiles(services).has_name(owner, name):
        raise name_taken(name, "metadata.profile.save_as")
    assets: dict[str, Any] = {}
    attached = {a.id: a.key for a in graph.context.attachments}
    if (key := attached.get(str(meta.get("portrait")))) is not None:
        assets["portrait"] = await owned_object(services, owner, key, "portrait", "image")
    return {"name": name, "assets": assets}


async def save_started(services: Services, owner: str, save: dict[str, Any], graph: Graph, job_id: str) -> None:
    """Keep the profile a started job saves: preparing until its voice.prepare step ends (settle)."""
    prepares = any(n.service == PREPARE for n in graph.nodes)
    await services_profiles(services).create(owner, save["name"], default=False, assets=save["assets"],
                                             pending_job=job_id if prepares else None, jobs=[job_id])


# ---- what answers and the planner see -----------------------------------------------------------


def profile_view(row: dict[str, Any], services: Services) -> dict[str, Any]:
    """A profile as the API shows it: its assets with signed links (playable in a browser)."""
    assets = {kind: a | {"url": signed_path(a["key"], services.links)}
              for kind, a in (row.get("assets") or {}).items() if isinstance(a, dict) and "key" in a}
    voice = assets.get("voice")
    return {
        "id": row["id"], "name": row["name"], "default": row["is_default"], "status": row["status"],
        "error": row.get("error"), "portrait": assets.get("portrait"), "voice": voice,
        "features": (voice or {}).get("features"), "reference_text": (voice or {}).get("reference_text"),
        "assets": assets, "pending_job": row.get("pending_job"), "jobs": list(row.get("jobs") or []),
        "created": iso(row.get("created_at")), "updated": iso(row.get("updated_at")),
        "url": f"/api/profiles/{row['id']}",
    }


def planner_profile(row: dict[str, Any]) -> dict[str, Any]:
    """What the planner reads of a profile (planner.models.Profile): names, status and object keys."""
    assets = row.get("assets") or {}
    portrait, voice = assets.get("portrait") or {}, assets.get("voice") or {}
    return {"id": row["id"], "name": row["name"], "default": row["is_default"], "status": row["status"],
            "portrait": portrait.get("key"), "voice": voice.get("key"),
            "reference_text": voice.get("reference_text") or None}


def preparation_graph(name: str, reference_text: str | None, say: str | None, sample: dict[str, Any],
                      portrait: dict[str, Any] | None) -> Graph:
    """The job POST /api/profiles starts: voice.prepare on the uploaded `sample` (planner.training.prepare_node,
    the step a planned "save this as NAME" uses too); "train and generate" (`say`) adds speech in the prepared
    voice, and a talking head when a `portrait` is given."""
    attachments = [Attachment.model_validate({"id": "sample", "kind": "audio", **sample})]
    nodes = [prepare_node(name, "sample", reference_text, "gpu")]
    if say:
        nodes.append(Node(id="voice", name="Speak the text", service="tts.synthesize", plane="gpu",
                          params={"text": say, **voice_params(reference_text)}))
        finals = [node_ref("voice", "audio")]
        if portrait is not None:
            attachments.append(Attachment.model_validate({"id": "portrait", "kind": "image", **portrait}))
            nodes.append(Node(id="talk", name="Animate the portrait", service="video.animate_portrait", plane="gpu",
                              params={"image": {"$attachment": "portrait"}, "audio": node_ref("voice", "audio")}))
            finals = [node_ref("talk", "video")]
        nodes.append(Node(id="publish", name="Publish", service="artifact.publish", plane="control",
                          params={"items": finals, "title": shorten(say, 80)}))
    return Graph(
        schema="langgraph.v1", workflowId=f"profile-{uuid.uuid4().hex[:12]}",
        context=Context(goal=f"prepare the voice of profile {name}" + (f" and say: {say}" if say else ""),
                        attachments=attachments, inputs={"profile": name}),
        metadata={"profile": {"name": name, "mode": "train_and_generate" if say else "train"}},
        nodes=nodes, edges=edges_from_refs(nodes))
