"""The generated manifests in manifests/: the static view of each plane's registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from executors.control import registry as control_registry
from executors.gpu import registry as gpu_registry
from spinbot import constants as C
from spinbot.graph import Plane
from spinbot.registry import Registry


def registry(plane: Plane) -> Registry:
    """A fresh task registry of `plane` (the handlers' declarations: the one source of its manifest)."""
    return (control_registry if plane == "control" else gpu_registry).build()


def generated(plane: Plane) -> dict[str, Any]:
    """The manifest as committed: from declarations only, no probing of this machine."""
    return registry(plane).manifest().model_dump(mode="json", by_alias=True, exclude_none=True)


def render(plane: Plane) -> str:
    return json.dumps(generated(plane), indent=2, sort_keys=True) + "\n"


def write_manifests(directory: Path) -> list[Path]:
    """Write manifests/{plane}.json for each plane into `directory`; returns the paths written."""
    paths = []
    for plane in C.PLANES:
        path = directory / f"{plane}.json"
        path.write_text(render(plane))  # type: ignore[arg-type]
        paths.append(path)
    return paths
