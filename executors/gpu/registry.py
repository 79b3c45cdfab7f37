"""The GPU plane's task registry."""

from __future__ import annotations

from executors import diag
from executors.gpu import image, info, subtitle, tts, upscale, video, voice
from spinbot.registry import Registry


def build() -> Registry:
    return Registry.from_modules("gpu", [diag, info, tts, image, video, upscale, voice, subtitle])
