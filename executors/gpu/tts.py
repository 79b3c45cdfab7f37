"""tts.synthesize: text -> speech WAV. eSpeak NG built in; an F5-TTS server by configuration.

With a reference voice sample, the F5-TTS server clones it; eSpeak cannot clone, so it speaks with the
settings it has that come closest to the sample's measured pitch and speaking rate, and says so.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from executors.gpu import espeak, measure, voice
from executors.gpu.common import ArtifactInput, Reporter, fetch, in_thread, off_loop, scratch, stream_to_file
from executors.gpu.media import load_audio, write_wav
from spinbot.checks import Check, find
from spinbot.errors import PermanentError, SpinbotError
from spinbot.estimates import CHARS_PER_WORD
from spinbot.expectations import FEMALE_FROM_HZ
from spinbot.manifest import Attachable, CostFeature, Offer, OutputSize, RetryPolicy
from spinbot.registry import service
from spinbot.settings import Settings
from spinbot.task import TaskContext
from spinbot.units import duration_text

log = logging.getLogger(__name__)

Voice = Literal["female", "male"]
#: eSpeak variants (espeak-ng-data/voices/!v) and base pitch per voice: of the variants tried, the ones
#: a speech recogniser understood best (tests/tasks/test_tts.py: forced choice with PocketSphinx).
ESPEAK_VOICES: dict[str, tuple[str, int]] = {"female": ("f2", 62), "male": ("m2", 45)}
#: Longest piece of text handed to an engine at once; progress and cancellation happen between pieces.
CHUNK_CHARS = 400
SENTENCE_GAP_S = 0.12
#: A sample whose median pitch is under FEMALE_FROM_HZ gets the male variant, else the female one (the
#: line the voice check uses too); each variant's pitch setting then moves it to the sample's pitch.
#: eSpeak pitch settings measured per variant to map a pitch in Hz to a setting (pitch_table).
PITCH_STEPS = (0, 15, 30, 45, 60, 75, 90, 99)
CALIBRATION_TEXT = "Each cell releases electrons when light hits it, and the panel turns it into power."


class TTSParams(BaseModel):
    text: str = Field(min_length=1, max_length=20_000, description="what to say")
    voice: Voice = Field(default="female")
    speed: int = Field(default=160, ge=80, le=450, description="words per minute")
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$", description="e.g. en, en-us, de, fr")
    reference_audio: ArtifactInput | None = Field(
        default=None, description="a voice sample to speak like, e.g. voice.prepare's voice"
    )
    reference_text: str | None = Field(
        default=None, min_length=1, max_length=2000, description="the exact words of reference_audio (required with it)"
    )

    model_config = ConfigDict(json_schema_extra={"dependentRequired": {"reference_audio": ["reference_text"]}})

    @model_validator(mode="after")
    def _text_with_reference(self) -> TTSParams:
        if self.reference_audio is not None and not self.reference_text:
            raise ValueError("reference_text (the words spoken in reference_audio) is required with reference_audio")
        return self


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


@dataclass(frozen=True, slots=True)
class Spoken:
    """What an engine made: the WAV's duration (s) and how its voice relates to the reference sample."""

    duration_s: float
    voice_match: str


class TTSEngine(Protocol):
    name: str

    async def synthesize(self, ctx: TaskContext, p: TTSParams, out: Path, reference: Path | None) -> Spoken:
        """Write a WAV of p.text to out, in the voice of `reference` (p.reference_text's words) if given."""
        ...


@dataclass(frozen=True, slots=True)
class EspeakVoice:
    """eSpeak settings: variant (e.g. f2), pitch setting 0-99, words per minute."""

    variant: str
    pitch: int
    wpm: int


@cache
def pitch_table(variant: str) -> tuple[np.ndarray, np.ndarray]:
    """(median pitch in Hz, eSpeak pitch setting) of the English voice with this variant, measured at
    PITCH_STEPS by voice.median_pitch_hz: the same measure a sample gets, so the mapping is consistent."""
    rate = espeak.load().sample_rate
    hz = []
    for step in PITCH_STEPS:
        pcm = espeak.synthesize(CALIBRATION_TEXT, voice=f"en+{variant}", wpm=160, pitch=step)
        hz.append(voice.median_pitch_hz(voice.resample(pcm / 32768, rate, voice.ANALYSIS_RATE), voice.ANALYSIS_RATE))
    return np.maximum.accumulate(np.asarray(hz)), np.asarray(PITCH_STEPS, dtype=np.float64)


def closest_voice(f: voice.Features, p: TTSParams) -> EspeakVoice:
    """The eSpeak settings nearest a measured voice: variant by pitch, the pitch setting interpolated in
    pitch_table, the sample's speaking rate unless p.speed was given."""
    variant = ESPEAK_VOICES["female" if f.pitch_hz >= FEMALE_FROM_HZ else "male"][0]
    hz, steps = pitch_table(variant)
    pitch = int(round(float(np.interp(f.pitch_hz, hz, steps))))
    wpm = p.speed if "speed" in p.model_fields_set else int(np.clip(round(f.wpm), 80, 450))
    return EspeakVoice(variant, pitch, wpm)


class EspeakEngine:
    """eSpeak NG in-process (libespeak-ng via ctypes): robotic but intelligible, any language it knows."""

    name = "espeak-ng"

    async def synthesize(self, ctx: TaskContext, p: TTSParams, out: Path, reference: Path | None) -> Spoken:
        variant, pitch = ESPEAK_VOICES[p.voice]
        settings = EspeakVoice(variant, pitch, p.speed)
        match = f"{self.name} {p.voice} voice (no reference)"
        if reference is not None:
            await ctx.progress(0.02, "measuring the reference voice")
            sample = await in_thread(voice.analyse, reference, p.reference_text or "", out.parent)
            f = sample.features
            settings = await in_thread(closest_voice, f, p)
            match = (
                f"approximated: pitch {f.pitch_hz:.0f} Hz, {f.wpm:.0f} wpm (eSpeak cannot clone a voice: "
                f"its {settings.variant} variant at pitch {settings.pitch}, {settings.wpm} wpm)"
            )
        duration = await self._speak(ctx, p, settings, out)
        return Spoken(duration, match)

    async def _speak(self, ctx: TaskContext, p: TTSParams, s: EspeakVoice, out: Path) -> float:
        voice_name = f"{p.language}+{s.variant}"
        pieces = chunk_text(p.text)
        report = Reporter(ctx)

        def work() -> float:
            rate = espeak.load().sample_rate
            gap = np.zeros(int(rate * SENTENCE_GAP_S), dtype=np.int16)
            parts: list[np.ndarray] = []

            def stop() -> bool:
                return ctx.cancelled

            for i, piece in enumerate(pieces):
                report.check()
                parts += [espeak.synthesize(piece, voice=voice_name, wpm=s.wpm, pitch=s.pitch, should_stop=stop), gap]
                report((i + 1) / len(pieces), f"spoke {i + 1}/{len(pieces)} pieces", force=True)
            report.check()
            audio = np.concatenate(parts)
            write_wav(out, audio, rate)
            return len(audio) / rate

        return await in_thread(work)


class OpenAISpeechEngine:
    """An F5-TTS server. Without a reference: its OpenAI speech API (POST /v1/audio/speech, JSON).
    With one: the F5-TTS API of jianchang512/f5-tts-api (POST /api, multipart form: the sample as file
    `audio`, `ref_text` its words, `gen_text` what to say, `model`, `speed`; answers a WAV), the same
    ref_audio/ref_text/gen_text triple as F5-TTS's own infer_cli."""

    name = "openai-speech"

    def __init__(self, url: str, model: str) -> None:
        self.url = url.rstrip("/")
        self.model = model

    async def synthesize(self, ctx: TaskContext, p: TTSParams, out: Path, reference: Path | None) -> Spoken:
        pieces = chunk_text(p.text, limit=1000)
        parts: list[Path] = []
        sample = await in_thread(self._reference_wav, reference) if reference is not None else None
        async with httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(300, connect=5)) as client:
            for i, piece in enumerate(pieces):
                ctx.check_cancelled()
                part = out.with_name(f"{out.stem}.{i}.audio")
                if sample is None:
                    await self._speak(client, piece, p, part)
                else:
                    await self._clone(client, piece, p, sample, part)
                parts.append(part)
                await ctx.progress((i + 1) / len(pieces) * 0.95, f"spoke {i + 1}/{len(pieces)} pieces")

        def join() -> float:
            rate = 24_000
            samples = np.concatenate([load_audio(part, rate) for part in parts])
            write_wav(out, np.clip(samples * 32767, -32768, 32767).astype(np.int16), rate)
            for part in parts:
                part.unlink()
            return len(samples) / rate

        duration = await in_thread(join)
        match = f"cloned by {self.model} at {self.url}" if sample else f"{self.model} {p.voice} voice (no reference)"
        return Spoken(duration, match)

    @staticmethod
    def _reference_wav(reference: Path) -> bytes:
        """The sample as a 24 kHz mono WAV (the rate F5-TTS works at); PermanentError if it is not audio."""
        samples = voice.decode(reference, voice.VOICE_RATE)
        pcm = np.clip(samples * 32767, -32768, 32767).astype(np.int16)
        return write_wav(reference.with_name("reference.24k.wav"), pcm, voice.VOICE_RATE).read_bytes()

    async def _speak(self, client: httpx.AsyncClient, text: str, p: TTSParams, dest: Path) -> None:
        body = {"model": self.model, "input": text, "voice": p.voice, "response_format": "wav", "speed": p.speed / 160}
        await stream_to_file(client.stream("POST", "/v1/audio/speech", json=body), dest, f"TTS server {self.url}")

    async def _clone(self, client: httpx.AsyncClient, text: str, p: TTSParams, sample: bytes, dest: Path) -> None:
        form = {"ref_text": p.reference_text or "", "gen_text": text, "model": self.model, "speed": str(p.speed / 160)}
        files = {"audio": ("reference.wav", sample, "audio/wav")}
        await stream_to_file(client.stream("POST", "/api", data=form, files=files), dest, f"TTS server {self.url}")


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


async def check_speech(ctx: TaskContext, p: TTSParams, out: dict[str, Any]) -> list[Check]:
    """The speech's duration, loudness, median pitch and whether the recogniser hears p.text in it."""
    async with scratch(ctx) as tmp:
        path = await fetch(ctx, out["audio"], tmp, "speech")
        return await off_loop(measure.speech_checks, path, p.text, p.language, lambda: ctx.cancelled, p.speed)


#: A refined run speaks this much slower (eSpeak says the same words the same way at the same rate).
SLOWER = 0.8


def refine_speech(p: TTSParams, found: list[Check]) -> tuple[dict[str, Any], str] | None:
    """Speech whose words the recogniser misses is synthesised once more, slower."""
    words = find(found, "words")
    if words is None or words.ok is not False or p.speed <= 100:
        return None
    slower = max(80, round(p.speed * SLOWER))
    return {"speed": slower}, (f"the recogniser did not hear the text (word match {words.value}); speaking it "
                               f"again at {slower} instead of {p.speed} words a minute")


@service(
    "tts.synthesize",
    planes=["gpu"],
    description=(
        "Text to speech: speaks `text` (e.g. a script's narration) as a WAV with a female or male voice "
        "at `speed` words per minute in `language`. To speak in a person's voice, give `reference_audio` "
        "(e.g. voice.prepare's voice) and `reference_text` (its words): a cloning engine copies the voice, "
        "the built-in one only approximates its pitch and pace. Outputs the audio, its duration in seconds "
        "and `voice_match` (how the voice relates to the reference: cloned or approximated)."
    ),
    params=TTSParams,
    inputs={"text": "text", "reference_audio": "audio", "reference_text": "text"},
    outputs={"audio": "audio", "duration_s": "number", "voice_match": "text"},
    version="3",  # 3: outputs carry their checks
    gpu=False,
    duration_s=3.0,
    memory_mb=200,
    features=(CostFeature(name="chars", of=["params.text"], typical=450),),
    predicts={"duration_s": OutputSize(of=["params.text"], per=["params.speed"], scale=60 / CHARS_PER_WORD)},
    engine=("tts_url", "tts_model"),  # the engine these choose is part of the node cache key
    retry=RetryPolicy(max_attempts=2, backoff_s=1.0),
    timeout_s=900,
    probe=probe,
    offers=(Offer(
        deliverable="speech", does="read text aloud (text to speech, female or male voice)", output="audio",
        says=[r"say|says|saying|read|reads|recite|speak|speaks|pronounce"],
        cues=[r"said|talk|talks|read (?:it |this |that )?(?:aloud|out)|narrate|"
              r"voice[- ]?over|text[- ]to[- ]speech|tts|aloud|out loud|audio|speech|spoken|voice (?:message|note)|"
              r"mp3|wav|podcast|audiobook|audio ?book|announcement|voicemail|ringtone",
              r"lis|lire|dis|dire|prononce|à voix haute|a voix haute|à haute voix",  # fr
              r"lies|vorlesen|lies vor|sag|sage|sprich|laut",  # de
              r"lee|leer|di|decir|en voz alta|pronuncia",  # es
              r"leggi|leggere|dì|ad alta voce",  # it
              r"leia|ler|diga|em voz alta",  # pt
              r"прочитай|прочти|скажи|вслух",  # ru
              r"اقرأ|إقرأ|اقرا|قل|بصوت عال\w*|بصوت مرتفع",  # ar
              r"朗读|读出|念|说|语音|配音|読んで|言って|音読|読み上げ|音声"]),),  # zh, ja
    attachable={"text": Attachable(role="the words to speak"), "reference_audio": Attachable(
        role="the voice to speak in", cue=r"(?:in|with|using|like|as) (?:this|that|the attached|the same|her|his) "
                                          r"(?:voice|recording|sample)|clone|voice sample|voice (?:of|from|in) "
                                          r"(?:this|that|the attached|the) (?:audio|recording|sample|clip|file)")},
    checks=check_speech,
    measures=("duration_s", "loudness_dbfs", "pitch_hz", "words"),
    refine=refine_speech,
)
async def synthesize(ctx: TaskContext, p: TTSParams) -> dict[str, Any]:
    engine = engine_for(ctx.settings)
    await ctx.log(
        f"tts: {len(p.text)} chars, voice={p.voice} speed={p.speed} language={p.language} engine={engine.name}"
        + (" with a reference voice" if p.reference_audio is not None else "")
    )
    async with scratch(ctx) as tmp:
        reference = await fetch(ctx, p.reference_audio, tmp, "reference") if p.reference_audio is not None else None
        out = tmp / "speech.wav"
        spoken = await engine.synthesize(ctx, p, out, reference)
        if spoken.duration_s <= 0:
            raise PermanentError("the TTS engine produced no audio", hint="check the text and the language code")
        audio = await ctx.put_artifact("speech.wav", out, "audio/wav")
    await ctx.log(f"tts voice: {spoken.voice_match}")
    await ctx.progress(1.0, f"{duration_text(spoken.duration_s)} of speech")
    return {"audio": audio, "duration_s": round(spoken.duration_s, 3), "voice_match": spoken.voice_match}
