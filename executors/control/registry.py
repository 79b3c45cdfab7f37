"""The control plane's task registry."""

from __future__ import annotations

from executors import diag
from executors.control import capabilities, publish, script
from spinbot.registry import Registry


def build() -> Registry:
    return Registry.from_modules("control", [diag, script, publish, capabilities])
