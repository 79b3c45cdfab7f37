"""HTTP routes, one module per area, each with its `router`: a new area is one new module here (found by
routers(), no list to extend), and its entry in docs/api.md."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    """The `router` of every module of this package, in module-name order (their paths do not overlap)."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg)
    return [importlib.import_module(f"{__name__}.{name}").router for name in names]
