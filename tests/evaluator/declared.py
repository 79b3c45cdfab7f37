"""The declared services as tests see them: the manifests generated from the handlers' declarations."""

from __future__ import annotations

from spinbot.capabilities import committed_manifest
from spinbot.manifest import MergedManifest


def declared_manifest(*, unavailable: tuple[str, ...] = ()) -> MergedManifest:
    """manifests/*.json merged (tests/test_manifest.py proves them equal to the registry); `unavailable`
    services report that they cannot run now."""
    merged = committed_manifest()
    for sid in unavailable:
        merged.services[sid].available = False
        merged.services[sid].unavailable_reason = "engine not installed"
    return merged
