"""The generated manifests in manifests/: the static view of each plane's registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spinbot.graph import Plane
from spinbot.registry import Registry


def registry(plane: Plane) -> Registry:
    if plane == "control":
        from executors.control.registry import build
    else:
        from executors.gpu.registry import build
    return build()


def generated(plane: Plane) -> dict[str, Any]:
    """The manifest as committed: from declarations only, no probing of this machine."""
    return registry(plane).manifest().model_dump(mode="json", by_alias=True, exclude_none=True)


def render(plane: Plane) -> str:
    return json.dumps(generated(plane), indent=2, sort_keys=True) + "\n"


def write_manifests(directory: Path) -> list[Path]:
    paths = []
    for plane in ("control", "gpu"):
        path = directory / f"{plane}.json"
        path.write_text(render(plane))  # type: ignore[arg-type]
        paths.append(path)
    return paths
