"""Where a running `spinbot up` put its private servers, so other commands find them."""

from __future__ import annotations

import json
from pathlib import Path

from spinbot.settings import Settings


def runtime_file(settings: Settings) -> Path:
    return settings.data_dir / "runtime.json"


def resolve(settings: Settings) -> Settings:
    """Fill unset Redis/Postgres URLs, and the API's address for `spinbot chat`, from the runtime file of a
    running `spinbot up` (so `spinbot up --port 8100` and then `spinbot chat` find each other)."""
    path = runtime_file(settings)
    follows_api = settings.api_url is None and not {"host", "port"} & settings.model_fields_set
    if (settings.redis_url and settings.database_url and not follows_api) or not path.exists():
        return settings
    found = json.loads(path.read_text())
    return settings.model_copy(
        update={
            "redis_url": settings.redis_url or found.get("redis_url"),
            "database_url": settings.database_url or found.get("database_url"),
            "api_url": settings.api_url or (found.get("api_url") if follows_api else None),
        }
    )


def write_runtime(settings: Settings, **values: object) -> Path:
    path = runtime_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    return path
