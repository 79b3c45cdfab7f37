"""Where a running `spinbot up` put its private servers, so other commands find them."""

from __future__ import annotations

import json
from pathlib import Path

from spinbot.settings import Settings


def runtime_file(settings: Settings) -> Path:
    return settings.data_dir / "runtime.json"


def resolve(settings: Settings) -> Settings:
    """Fill unset Redis/Postgres URLs from the runtime file of a running `spinbot up`."""
    path = runtime_file(settings)
    if (settings.redis_url and settings.database_url) or not path.exists():
        return settings
    found = json.loads(path.read_text())
    return settings.model_copy(
        update={
            "redis_url": settings.redis_url or found.get("redis_url"),
            "database_url": settings.database_url or found.get("database_url"),
        }
    )


def write_runtime(settings: Settings, **values: object) -> Path:
    path = runtime_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    return path
