"""Profiles: list, make (from a portrait and a voice sample, or an already prepared voice), read, delete."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.pipelines import edges_from_refs
from spinbot.units import shorten
from web import admission
from web.deps import OwnerDep, Services, ServicesDep
from web.problems import Problem, not_found
from web.profiles import (
    PREPARE,
    ProfileName,
    job_graph,
    name_taken,
    owned_object,
    owned_profile,
    owned_profiles,
    prepared_voice,
    profile_view,
    services_profiles,
)
from web.views import job_links

router = APIRouter(prefix="/api/profiles", tags=["profiles"])


class ProfileIn(BaseModel):
    """A new profile: a name, and a portrait and/or a voice (a sample to prepare, or a prepared voice)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: ProfileName = Field(description="how goals name it (\"make Anna say ...\"); unique per API key, whatever "
                                          "its case, accents' encoding or width")
    portrait: str | None = Field(default=None, max_length=512,
                                 description="object key of an image: an upload (uploads/...) or a job's artifact")
    voice_sample: str | None = Field(default=None, max_length=512,
                                     description="upload key of a voice recording; a job prepares it (voice.prepare)")
    reference_text: str | None = Field(default=None, min_length=1, max_length=2000,
                                       description="what the voice sample says, word for word")
    voice: str | None = Field(default=None, max_length=512,
                              description="an already prepared voice: the `voice` artifact of a voice.prepare node")
    default: bool = Field(default=False, description="the profile \"my voice\" means (the first one is anyway)")
    say: str | None = Field(default=None, min_length=1, max_length=2000,
                            description="train and generate: once the voice is prepared, speak this in it "
                                        "(and animate the portrait, when there is one)")

    @model_validator(mode="after")
    def _complete(self) -> ProfileIn:
        if not (self.portrait or self.voice_sample or self.voice):
            raise ValueError("a profile needs a portrait, a voice_sample (with its reference_text) or a voice")
        if self.voice_sample and self.voice:
            raise ValueError("give a voice_sample to prepare or a prepared voice, not both")
        if self.voice_sample and not self.reference_text:
            raise ValueError("a voice_sample needs its reference_text: what the recording says")
        if self.say and not self.voice_sample:
            raise ValueError("`say` (train and generate) needs a voice_sample to prepare")
        return self


EXAMPLE = {"name": "Anna", "portrait": "uploads/local/a1b2c3/anna.png", "voice_sample": "uploads/local/d4e5f6/anna.wav",
           "reference_text": "The quick brown fox jumps over the lazy dog.", "default": True}


@router.get("", summary="The caller's profiles (the default first)")
async def list_profiles(services: ServicesDep, owner: OwnerDep) -> dict[str, Any]:
    return {"items": [profile_view(r, services) for r in await owned_profiles(services, owner)]}


@router.post("", status_code=201, summary="Make a profile; with a voice sample, a job prepares it (202)",
             responses={202: {"description": "the profile (preparing) and the job that prepares its voice"},
                        409: {"description": "a profile of that name exists"},
                        415: {"description": "the portrait is not an image, or the sample not audio"}})
async def create_profile(
    services: ServicesDep, owner: OwnerDep,
    body: Annotated[ProfileIn, Body(openapi_examples={"sample": {"value": EXAMPLE}})],
) -> JSONResponse:
    profiles = services_profiles(services)
    if await profiles.has_name(owner, body.name):  # before a preparation job starts for nothing
        raise name_taken(body.name, "name")
    assets: dict[str, Any] = {}
    jobs: list[str] = []
    if body.portrait:
        assets["portrait"] = await owned_object(services, owner, body.portrait, "portrait", "image")
    if body.voice:
        assets["voice"] = await prepared(services, owner, body.voice)
        jobs.append(assets["voice"]["job"])
    job_id = None
    if body.voice_sample:
        sample = await owned_object(services, owner, body.voice_sample, "voice_sample", "audio")
        job_id = await submit_preparation(services, owner, body, sample, assets.get("portrait"))
        jobs.append(job_id)
    row = await profiles.create(owner, body.name, default=body.default, assets=assets, pending_job=job_id, jobs=jobs)
    view = profile_view(row, services)
    if job_id is None:
        return JSONResponse({"profile": view}, status_code=201, headers={"Location": view["url"]})
    return JSONResponse({"profile": view, "job": {"id": job_id, **job_links(job_id)}}, status_code=202,
                        headers={"Location": view["url"]})


@router.get("/{profile_id}", summary="A profile: its portrait, prepared voice, features and jobs")
async def get_profile(services: ServicesDep, owner: OwnerDep, profile_id: str) -> dict[str, Any]:
    return profile_view(await owned_profile(services, profile_id, owner), services)


class ProfilePatch(BaseModel):
    """What can change on a profile: its name, and which profile "my voice" means."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: ProfileName | None = None
    default: Literal[True] | None = Field(default=None, description="make this the default profile")


@router.patch("/{profile_id}", summary="Rename a profile or make it the default")
async def update_profile(services: ServicesDep, owner: OwnerDep, profile_id: str, body: ProfilePatch) -> dict[str, Any]:
    if body.default:
        current = await owned_profile(services, profile_id, owner)
        if current["status"] == "failed":  # "my voice" must be a voice: a failed preparation has none
            raise Problem(409, f"profile {current['name']} cannot be the default: preparing its voice failed",
                          code="profile_failed", hint="delete it and make it again from a clearer voice sample")
    row = await services_profiles(services).update(profile_id, owner, name=body.name, default=body.default)
    if row is None:
        raise not_found("profile", profile_id)
    return profile_view(row, services)


@router.delete("/{profile_id}", status_code=204, summary="Delete a profile (a voice still being prepared is cancelled)")
async def delete_profile(services: ServicesDep, owner: OwnerDep, profile_id: str) -> Response:
    row = await services_profiles(services).delete(profile_id, owner)
    if row is None:
        raise not_found("profile", profile_id)
    if row.get("pending_job"):
        await services.queue.cancel(row["pending_job"])
    return Response(status_code=204)


# ---- checks ------------------------------------------------------------------------------------


async def prepared(services: Services, owner: str, key: str) -> dict[str, Any]:
    """The voice asset for an already prepared voice: the `voice` output of the owner's voice.prepare node."""
    await owned_object(services, owner, key, "voice", "audio")
    parts = key.split("/")
    found = await job_graph(services, parts[1], owner) if len(parts) == 4 and parts[0] == "jobs" else None
    node = next((n for n in (found[1] if found else {}).get("nodes", []) if n.get("id") == parts[2]), None)
    voice = prepared_voice(parts[1], node) if node and node.get("service") == PREPARE else None
    if voice is None or voice["key"] != key:
        raise Problem(422, f"voice {key} is not a prepared voice", code="not_a_prepared_voice", field="voice",
                      hint="give the `voice` output of a completed voice.prepare node, or a voice_sample "
                           "with its reference_text to prepare")
    return voice


async def submit_preparation(services: Services, owner: str, body: ProfileIn, sample: dict[str, Any],
                             portrait: dict[str, Any] | None) -> str:
    """The job that prepares the sample (voice.prepare), and with `say` speaks it in that voice: its id."""
    doc = preparation_graph(body, sample, portrait)
    graph = admission.parse_graph(services.settings, doc)
    verdict = await admission.evaluate(services, graph, owner)
    if not verdict.ok:
        raise admission.refuse(verdict)
    return await admission.submit(services, verdict.graph or graph, owner)


def preparation_graph(body: ProfileIn, sample: dict[str, Any], portrait: dict[str, Any] | None) -> dict[str, Any]:
    """voice.prepare on the sample; "train and generate" adds speech in the prepared voice (and a talking head)."""
    attachments = [{"id": "sample", "kind": "audio", **sample}]
    nodes: list[dict[str, Any]] = [{"id": "prepare", "name": f"Prepare {body.name}'s voice", "service": PREPARE,
                                    "plane": "gpu", "params": {"audio": {"$attachment": "sample"},
                                                               "text": body.reference_text}}]
    if body.say:
        nodes.append({"id": "voice", "name": "Speak the text", "service": "tts.synthesize", "plane": "gpu",
                      "params": {"text": body.say, "reference_audio": {"$node": "prepare", "output": "voice"},
                                 "reference_text": body.reference_text}})
        finals = [{"$node": "voice", "output": "audio"}]
        if portrait is not None:
            attachments.append({"id": "portrait", "kind": "image", **portrait})
            nodes.append({"id": "talk", "name": "Animate the portrait", "service": "video.animate_portrait",
                          "plane": "gpu", "params": {"image": {"$attachment": "portrait"},
                                                     "audio": {"$node": "voice", "output": "audio"}}})
            finals = [{"$node": "talk", "output": "video"}]
        nodes.append({"id": "publish", "name": "Publish", "service": "artifact.publish", "plane": "control",
                      "params": {"items": finals, "title": shorten(body.say, 80)}})
    return {"schema": "langgraph.v1", "workflowId": f"profile-{uuid.uuid4().hex[:12]}",
            "context": {"goal": f"prepare the voice of profile {body.name}" + (f" and say: {body.say}" if body.say
                                                                               else ""),
                        "attachments": attachments, "inputs": {"profile": body.name}},
            "metadata": {"profile": {"name": body.name, "mode": "train_and_generate" if body.say else "train"}},
            "nodes": nodes, "edges": edges_from_refs(nodes)}
