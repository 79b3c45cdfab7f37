"""The shared service catalog as a manifest for tests: the committed manifests win where they declare a service.

The real services are declared by their handlers (executors/*); until a declaration lands in the
committed manifests/*.json, its catalog entry (the contract every helper codes against) stands in.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from spinbot import MANIFESTS_DIR
from spinbot.manifest import ConstraintCheck, Estimate, MergedManifest, PlaneManifest, ServiceSpec, merge


def _obj(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


REF: dict[str, Any] = {}  # an input param: its value is a reference, any JSON in the schema
VOICE = {"enum": ["female", "male"], "default": "female", "type": "string"}

CATALOG: list[tuple[str, dict[str, Any]]] = [
    (
        "control",
        dict(
            id="llm.generate_script",
            description="Write a narration script for a short video about a topic.",
            params=_obj(
                ["topic"],
                topic={"type": "string", "minLength": 1, "maxLength": 2000},
                duration_s={"type": "number", "minimum": 5, "maximum": 600, "default": 30},
                style={"type": "string", "default": "informative", "maxLength": 200},
                language={"type": "string", "default": "en", "maxLength": 16},
                voice=VOICE,
            ),
            outputs={"title": "text", "narration": "text", "stage": "text", "script": "json"},
            estimate=Estimate(duration_s=20, memory_mb=0),
            constraints={"max_duration_s": ConstraintCheck(param="duration_s", op="<=")},
        ),
    ),
    (
        "control",
        dict(
            id="artifact.publish",
            description="Publish the results (artifacts and text) as the job's deliverables.",
            params=_obj(["items"], items={"type": "array", "minItems": 1, "maxItems": 32}, title={"type": "string"}),
            inputs={"items": "any"},
            outputs={"summary": "json"},
            estimate=Estimate(duration_s=0.5, memory_mb=0),
        ),
    ),
    (
        "control",
        dict(
            id="capabilities.get_manifest",
            description="Report what the system can do now (the merged manifest).",
            params=_obj([], gpu=REF),
            inputs={"gpu": "json"},
            outputs={"manifest": "json"},
            estimate=Estimate(duration_s=0.2, memory_mb=0),
        ),
    ),
    (
        "gpu",
        dict(
            id="gpu.info",
            description="Describe the GPU device and the gpu plane's services.",
            params=_obj([]),
            outputs={"info": "json"},
            estimate=Estimate(duration_s=0.2, memory_mb=0),
            gpu=True,
        ),
    ),
    (
        "gpu",
        dict(
            id="tts.synthesize",
            description="Speak a text aloud: narration audio.",
            params=_obj(
                ["text"],
                text=REF,
                voice=VOICE,
                speed={"type": "integer", "minimum": 80, "maximum": 450, "default": 160},
                language={"type": "string", "default": "en"},
            ),
            inputs={"text": "text"},
            outputs={"audio": "audio", "duration_s": "number"},
            estimate=Estimate(duration_s=15, memory_mb=2000),
            gpu=True,
        ),
    ),
    (
        "gpu",
        dict(
            id="image.render",
            description="Render an image from a prompt: a portrait or a title card.",
            params=_obj(
                ["prompt"],
                prompt=REF,
                kind={"enum": ["portrait", "title_card"], "default": "portrait", "type": "string"},
                title=REF,
                width={"type": "integer", "minimum": 64, "maximum": 2048, "default": 512},
                height={"type": "integer", "minimum": 64, "maximum": 2048, "default": 512},
            ),
            inputs={"prompt": "text", "title": "text"},
            outputs={"image": "image"},
            estimate=Estimate(duration_s=10, memory_mb=4000),
            gpu=True,
        ),
    ),
    (
        "gpu",
        dict(
            id="video.animate_portrait",
            description="Animate a portrait image so it speaks the given audio (lip sync).",
            params=_obj(
                ["image", "audio"],
                image=REF,
                audio=REF,
                fps={"type": "integer", "minimum": 1, "maximum": 60, "default": 25},
                size={"type": "integer", "minimum": 64, "maximum": 2048, "default": 512},
            ),
            inputs={"image": "image", "audio": "audio"},
            outputs={"video": "video", "frames": "number", "duration_s": "number"},
            estimate=Estimate(duration_s=60, memory_mb=8000),
            gpu=True,
        ),
    ),
    (
        "gpu",
        dict(
            id="video.upscale",
            description="Upscale a video 2x or 4x.",
            params=_obj(
                ["video"],
                video=REF,
                factor={"enum": [2, 4], "default": 2, "type": "integer"},
                method={"enum": ["bicubic", "lanczos"], "default": "lanczos", "type": "string"},
            ),
            inputs={"video": "video"},
            outputs={"video": "video"},
            estimate=Estimate(duration_s=40, memory_mb=6000),
            gpu=True,
        ),
    ),
    (
        "gpu",
        dict(
            id="video.compose",
            description="Join clips into one video, with an audio track and burnt-in subtitles.",
            params=_obj(["clips"], clips={"type": "array", "minItems": 1, "maxItems": 32}, audio=REF, subtitles=REF),
            inputs={"clips": "video", "audio": "audio", "subtitles": "text"},
            outputs={"video": "video"},
            estimate=Estimate(duration_s=20, memory_mb=1000),
            gpu=True,
        ),
    ),
]


def catalog_specs() -> dict[str, tuple[str, ServiceSpec]]:
    return {d["id"]: (plane, ServiceSpec(planes=[plane], **d)) for plane, d in CATALOG}


@cache
def _committed() -> tuple[PlaneManifest, ...]:
    return tuple(
        PlaneManifest.model_validate(json.loads((MANIFESTS_DIR / f"{p}.json").read_text())) for p in ("control", "gpu")
    )


def catalog_manifest(*, unavailable: tuple[str, ...] = (), committed: bool = True) -> MergedManifest:
    """Committed manifests completed from the catalog (or the catalog alone); `unavailable` cannot run now."""
    if committed:
        planes = {m.plane: m.model_copy(deep=True) for m in _committed()}
    else:
        planes = {p: PlaneManifest(plane=p, services=[]) for p in ("control", "gpu")}  # type: ignore[misc]
    for sid, (plane, spec) in catalog_specs().items():
        if not any(s.id == sid for m in planes.values() for s in m.services):
            planes[plane].services.append(spec)
    merged = merge(planes.values())
    for sid in unavailable:
        merged.services[sid].available = False
        merged.services[sid].unavailable_reason = "engine not installed"
    return merged
