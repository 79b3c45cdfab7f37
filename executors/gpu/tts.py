"""tts.synthesize: text -> speech WAV. eSpeak NG built in; an OpenAI-compatible TTS server (F5-TTS) by configuration."""

from __future__ import annotations

import logging
import re
import wave
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import numpy as np
from pydantic import BaseModel, Field

from executors.gpu import espeak
from executors.gpu.common import Reporter, in_thread, scratch
from executors.gpu.media import load_audio, write_wav
from spinbot.errors import PermanentError, SpinbotError, TransientError
from spinbot.manifest import RetryPolicy
from spinbot.registry import service
from spinbot.settings import Settings
from spinbot.task import TaskContext

log = logging.getLogger(__name__)

Voice = Literal["female", "male"]
#: eSpeak variants (espeak-ng-data/voices/!v) and base pitch per voice: of the variants tried, the ones
#: a speech recogniser understood best (tests/tasks/test_tts.py: forced choice with PocketSphinx).
ESPEAK_VOICES: dict[str, tuple[str, int]] = {"female": ("f2", 62), "male": ("m2", 45)}
#: Longest piece of text handed to an engine at once; progress and cancellation happen between pieces.
CHUNK_CHARS = 400
SENTENCE_GAP_S = 0.12


class TTSParams(BaseModel):
    text: str = Field(min_length=1, max_length=20_000, description="what to say")
    voice: Voice = Field(default="female")
    speed: int = Field(default=160, ge=80, le=450, description="words per minute")
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$", description="e.g. en, en-us, de, fr")


def chunk_text(text: str, limit: int = CHUNK_CHARS) -> list[str]:
    """Split text into pieces of at most ~limit chars, at sentence ends, else at word boundaries."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?;:])\s+|\n{2,}", text) if s.strip()]
    pieces: list[str] = []
    for sentence in sentences:
        while len(sentence) > limit:
            cut = sentence.rfind(" ", 0, limit)
            cut = cut if cut > limit // 3 else limit
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if pieces and len(pieces[-1]) + 1 + len(sentence) <= limit:
            pieces[-1] = f"{pieces[-1]} {sentence}"
        elif sentence:
            pieces.append(sentence)
    return pieces


class TTSEngine(Protocol):
    name: str

    async def synthesize(self, ctx: TaskContext, p: TTSParams, out: Path) -> float:
        """Write a WAV of p.text to out; return its duration in seconds."""
        ...


class EspeakEngine:
    """eSpeak NG in-process (libespeak-ng via ctypes): robotic but intelligible, any language it knows."""

    name = "espeak-ng"

    async def synthesize(self, ctx: TaskContext, p: TTSParams, out: Path) -> float:
        variant, pitch = ESPEAK_VOICES[p.voice]
        voice = f"{p.language}+{variant}"
        pieces = chunk_text(p.text)
        report = Reporter(ctx)

        def work() -> float:
            rate = espeak.load().sample_rate
            gap = np.zeros(int(rate * SENTENCE_GAP_S), dtype=np.int16)
            parts: list[np.ndarray] = []
            for i, piece in enumerate(pieces):
                report.check()
                parts += [
                    espeak.synthesize(piece, voice=voice, wpm=p.speed, pitch=pitch, should_stop=lambda: ctx.cancelled),
                    gap,
                ]
                report((i + 1) / len(pieces), f"spoke {i + 1}/{len(pieces)} pieces", force=True)
            report.check()
            audio = np.concatenate(parts)
            write_wav(out, audio, rate)
            return len(audio) / rate

        return await in_thread(work)


class OpenAISpeechEngine:
    """A TTS server with the OpenAI speech API (POST /v1/audio/speech), e.g. an F5-TTS server."""

    name = "openai-speech"

    def __init__(self, url: str, model: str) -> None:
        self.url = url.rstrip("/")
        self.model = model

    async def synthesize(self, ctx: TaskContext, p: TTSParams, out: Path) -> float:
        pieces = chunk_text(p.text, limit=1000)
        parts: list[Path] = []
        async with httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(300, connect=5)) as client:
            for i, piece in enumerate(pieces):
                ctx.check_cancelled()
                part = out.with_name(f"{out.stem}.{i}.audio")
                await self._speak(client, piece, p, part)
                parts.append(part)
                await ctx.progress((i + 1) / len(pieces) * 0.95, f"spoke {i + 1}/{len(pieces)} pieces")

        def join() -> float:
            rate = 24_000
            samples = np.concatenate([load_audio(part, rate) for part in parts])
            write_wav(out, np.clip(samples * 32767, -32768, 32767).astype(np.int16), rate)
            for part in parts:
                part.unlink()
            return len(samples) / rate

        return await in_thread(join)

    async def _speak(self, client: httpx.AsyncClient, text: str, p: TTSParams, dest: Path) -> None:
        body = {"model": self.model, "input": text, "voice": p.voice, "response_format": "wav", "speed": p.speed / 160}
        try:
            async with client.stream("POST", "/v1/audio/speech", json=body) as r:
                if r.status_code >= 500:
                    raise TransientError(f"TTS server {self.url} answered {r.status_code}")
                if r.status_code >= 400:
                    raise PermanentError(f"TTS server {self.url} refused: {r.status_code} {(await r.aread())[:300]!r}")
                with dest.open("wb") as f:
                    async for chunk in r.aiter_bytes():
                        f.write(chunk)
        except httpx.TransportError as e:
            raise TransientError(f"TTS server {self.url} unreachable: {e}") from e


def engine_for(settings: Settings) -> TTSEngine:
    if settings.tts_url:
        return OpenAISpeechEngine(settings.tts_url, settings.tts_model)
    return EspeakEngine()


def probe(settings: Settings) -> str | None:
    if settings.tts_url:
        return None
    try:
        espeak.load()
    except SpinbotError as e:
        return f"{e.message} ({e.hint})" if e.hint else e.message
    return None


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


@service(
    "tts.synthesize",
    planes=["gpu"],
    description=(
        "Text to speech: speaks `text` (e.g. a script's narration) as a WAV with a female or male voice "
        "at `speed` words per minute in `language`. Outputs the audio and its duration in seconds."
    ),
    params=TTSParams,
    inputs={"text": "text"},
    outputs={"audio": "audio", "duration_s": "number"},
    gpu=False,
    duration_s=3.0,
    memory_mb=200,
    retry=RetryPolicy(max_attempts=2, backoff_s=1.0),
    timeout_s=900,
    probe=probe,
)
async def synthesize(ctx: TaskContext, p: TTSParams) -> dict[str, Any]:
    engine = engine_for(ctx.settings)
    await ctx.log(
        f"tts: {len(p.text)} chars, voice={p.voice} speed={p.speed} language={p.language} engine={engine.name}"
    )
    async with scratch(ctx) as tmp:
        out = tmp / "speech.wav"
        duration = await engine.synthesize(ctx, p, out)
        if duration <= 0:
            raise PermanentError("the TTS engine produced no audio", hint="check the text and the language code")
        audio = await ctx.put_artifact("speech.wav", out, "audio/wav")
    await ctx.progress(1.0, f"{duration:.1f} s of speech")
    return {"audio": audio, "duration_s": round(duration, 3)}
