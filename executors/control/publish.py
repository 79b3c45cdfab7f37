"""artifact.publish: a job's final artifacts (and any other results) gathered into one summary with links."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from spinbot.artifacts import ArtifactNotFound
from spinbot.manifest import RetryPolicy
from spinbot.registry import service
from spinbot.task import TaskContext

#: What a summary's `primary` is, by preference: the thing a person came for.
PRIMARY_ORDER = ("video/", "audio/", "image/")


class PublishParams(BaseModel):
    items: list[Any] = Field(min_length=1, max_length=50, description="outputs to publish: artifacts, text or JSON")
    title: str = Field(default="Results", max_length=300)


def is_artifact(value: Any) -> bool:
    """A node's artifact descriptor {key, contentType, ...} or a graph attachment {id, kind, key, ...}."""
    if not isinstance(value, dict) or not isinstance(value.get("key"), str):
        return False
    return "contentType" in value or ("id" in value and "kind" in value)


def download_path(key: str, public_url: str | None) -> str:
    path = "/api/artifacts/" + quote(key, safe="/")
    return f"{public_url.rstrip('/')}{path}" if public_url else path


def kind_of(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    return major if major in ("video", "audio", "image", "text") else "file"


async def describe(ctx: TaskContext, value: Any) -> dict[str, Any]:
    """One published item: an artifact (checked to exist in the store) with its link, or a value."""
    if not is_artifact(value):
        kind = "text" if isinstance(value, str) else "number" if isinstance(value, int | float) else "json"
        return {"kind": kind, "value": value}
    try:
        info = await ctx.store.stat(value["key"])
    except ArtifactNotFound as e:
        raise ArtifactNotFound(f"cannot publish {value['key']}: it is not in the artifact store ({e.message})",
                               hint=e.hint) from e
    return {
        "kind": kind_of(info.content_type),
        "key": info.key,
        "contentType": info.content_type,
        "size": info.size,
        "sha256": info.sha256 or value.get("sha256"),
        "url": download_path(info.key, ctx.settings.public_url),
        "name": info.key.rsplit("/", 1)[-1],
    }


@service(
    "artifact.publish",
    planes=["control"],
    description=(
        "Publishes a job's results: gathers the referenced `items` (videos, audio, images, scripts, values) "
        "into one summary with download links; use it as the graph's last step."
    ),
    params=PublishParams,
    inputs={"items": "any"},
    outputs={"summary": "json"},
    duration_s=0.2,
    memory_mb=0,
    cacheable=False,  # publishing is its side effect
    retry=RetryPolicy(max_attempts=3, backoff_s=0.5),
    timeout_s=60,
)
async def publish(ctx: TaskContext, p: PublishParams) -> dict[str, Any]:
    items = [await describe(ctx, v) for v in p.items]
    files = [i for i in items if "key" in i]
    primary = next((i for prefix in PRIMARY_ORDER for i in files if i["contentType"].startswith(prefix)), None)
    summary = {
        "title": p.title,
        "job": ctx.job_id,
        "items": items,
        "artifacts": len(files),
        "total_bytes": sum(i["size"] for i in files),
        "primary": primary,
    }
    await ctx.log(f"published {len(files)} artifact(s), {len(items) - len(files)} value(s)")
    return {"summary": summary}
