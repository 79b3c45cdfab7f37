"""Adding an API route is at most two files: a module under web/routes (found without a central list) and its
entry in docs/api.md."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

import web.routes
from spinbot.settings import Settings
from web.app import create_app


def paths(settings: Settings) -> set[str]:
    """The paths the app serves, as its OpenAPI document lists them."""
    return set(create_app(settings).openapi()["paths"])


def test_every_routes_module_is_served() -> None:
    served = paths(Settings())
    routes = [r for router in web.routes.routers() for r in router.routes]
    assert len(routes) > 20
    for route in routes:
        assert isinstance(route, APIRoute)
        assert not route.include_in_schema or re.sub(r":[^}]+}", "}", route.path) in served, route


def test_a_new_routes_module_is_served_with_no_other_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zz_added.py").write_text(
        "from fastapi import APIRouter\n"
        "router = APIRouter(prefix='/api/added')\n"
        "@router.get('')\n"
        "async def added() -> dict[str, str]:\n"
        "    return {}\n"
    )
    assert "/api/added" not in paths(Settings())
    monkeypatch.setattr(web.routes, "__path__", [*web.routes.__path__, str(tmp_path)])
    try:
        assert "/api/added" in paths(Settings())
    finally:
        sys.modules.pop("web.routes.zz_added", None)
