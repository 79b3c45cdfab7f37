"""voice.prepare: a voice sample checked, cleaned and measured once, so later speech can follow it.

The measurements (`analyse`) are shared with tts.synthesize, which approximates a sample's voice with
eSpeak when no cloning engine is configured: one implementation of what a voice "is" here.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from executors.gpu import speechcheck
from executors.gpu.common import ArtifactInput, Reporter, fetch, in_thread, scratch
from executors.gpu.media import ffmpeg_exe, load_audio, probe_ffmpeg, write_wav
from executors.gpu.speechcheck import words
from spinbot.errors import PermanentError
from spinbot.manifest import CostFeature, RetryPolicy
from spinbot.registry import service
from spinbot.task import TaskContext
from spinbot.units import duration_text

#: The analysis rate: enough for pitch (< 500 Hz) and what the recogniser's 16 kHz model expects.
ANALYSIS_RATE = 16_000
#: The prepared voice's rate: F5-TTS works at 24 kHz (its `target_sample_rate`), so cloning needs no resampling.
VOICE_RATE = 24_000
#: Speech after trimming: under 3 s neither a median pitch nor a speaking rate is stable and cloning
#: engines have too little to copy; F5-TTS uses at most ~15 s of reference (it clips longer ones), so a
#: minute is already four times what it needs and keeps the recogniser's check under half a minute.
MIN_SPEECH_S, MAX_SPEECH_S = 3.0, 60.0
#: An upload longer than this is refused before any analysis (a recording left running, a whole podcast).
MAX_INPUT_S = 300.0
#: A 20 ms frame counts as speech when it is within 40 dB of the loudest frame and above -60 dBFS;
#: a sample whose loudest frame is below -60 dBFS is silent (16-bit dither sits near -90 dBFS).
FRAME_S, DYNAMIC_DB, FLOOR_DB = 0.02, 40.0, -60.0
#: Margins kept around speech, and inner pauses: longer ones are cut down to KEEP_PAUSE_S.
EDGE_S, MAX_PAUSE_S, KEEP_PAUSE_S = 0.15, 0.6, 0.3
#: Loudness target of the prepared voice: -20 LUFS is about F5-TTS's reference level (target_rms 0.1,
#: -20 dBFS RMS); the peak is kept under -1 dBFS.
TARGET_LUFS, PEAK_DBFS = -20.0, -1.0
#: YIN (de Cheveigné & Kawahara, "YIN, a fundamental frequency estimator for speech and music",
#: JASA 111(4), 2002): the search range covers adult speech (60-500 Hz), 0.1 is the paper's absolute
#: threshold, and frames whose best dip is above 0.25 count as unvoiced.
F0_MIN_HZ, F0_MAX_HZ, YIN_THRESHOLD, YIN_VOICED = 60.0, 500.0, 0.1, 0.25
#: Frames more than 30 dB under the loudest are pauses, not voice (silence is perfectly "periodic" to YIN).
VOICED_DB = 30.0
YIN_HOP_S = 0.01

NOT_AUDIO_HINT = "upload a recording (WAV, MP3, M4A, OGG or FLAC) of 5-30 s of speech"
RECORD_HINT = "record 5-30 s of clear speech and give its exact words as the reference text"
#: Telephone-band speech (8 kHz recordings, calls) has next to nothing above 4 kHz, whatever rate it is stored
#: at. Measured on eSpeak voices: 0.6e-4 to 5e-4 of the energy above 4 kHz when recorded at 8 kHz, 1.3e-2 to
#: 6e-2 at 11-16 kHz. The speech check's acoustic model (PocketSphinx en-us) is a 16 kHz one: on such speech it
#: mishears (word match 0.0-0.69 for the right text, against 0.51-0.85 for the same speech at 16 kHz), and a
#: verdict on it means little either way (an 8 kHz sample of its text aligned at word match 0.43), so such a
#: sample is refused by this measure before the check.
NARROWBAND_SHARE = 3e-3


@dataclass(frozen=True, slots=True)
class Features:
    """What is measured of a voice: median pitch (Hz), speaking rate (words per minute), integrated
    loudness (LUFS, ITU-R BS.1770 via ffmpeg's loudnorm) before normalisation, and speech duration (s)."""

    pitch_hz: float
    wpm: float
    loudness_db: float
    duration_s: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 1) if k != "duration_s" else round(v, 3) for k, v in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class Sample:
    """A cleaned sample: `speech` at ANALYSIS_RATE, `voice` (normalised) at VOICE_RATE, both float32."""

    speech: np.ndarray
    voice: np.ndarray
    features: Features


def decode(path: Path, rate: int) -> np.ndarray:
    """The file's audio as mono float32 at `rate`; PermanentError 'not audio' when it has none."""
    try:
        samples = load_audio(path, rate)
    except PermanentError as e:
        raise PermanentError(f"not audio: {e.message}", hint=NOT_AUDIO_HINT) from None
    if samples.size == 0:
        raise PermanentError("not audio: the file decodes to no samples", hint=NOT_AUDIO_HINT)
    if len(samples) / rate > MAX_INPUT_S:
        raise PermanentError(
            f"the sample is too long: {len(samples) / rate:.0f} s (at most {MAX_INPUT_S:.0f} s are read)",
            hint=f"cut it to {MIN_SPEECH_S:.0f}-{MAX_SPEECH_S:.0f} s of speech",
        )
    return samples


def frame_db(x: np.ndarray, rate: int) -> np.ndarray:
    """RMS level of each FRAME_S frame in dBFS."""
    n = int(rate * FRAME_S)
    frames = x[: len(x) // n * n].reshape(-1, n).astype(np.float64)
    return 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


def speech_spans(x: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(start_s, end_s) of what to keep: speech with EDGE_S margins, pauses cut to KEEP_PAUSE_S.
    PermanentError when the sample is silent."""
    db = frame_db(x, rate)
    if db.size == 0 or db.max() < FLOOR_DB:
        raise PermanentError("the sample is silent: record 5-30 s of speech", hint=RECORD_HINT)
    active = np.flatnonzero(db >= max(FLOOR_DB, db.max() - DYNAMIC_DB))
    spans: list[tuple[float, float]] = []
    start = prev = int(active[0])
    for i in map(int, active[1:]):
        if (i - prev - 1) * FRAME_S > MAX_PAUSE_S:
            spans.append((start, prev + 1))
            start = i
        prev = i
    spans.append((start, prev + 1))
    margin = KEEP_PAUSE_S / 2
    total = len(x) / rate
    out = [(max(0.0, a * FRAME_S - margin), min(total, b * FRAME_S + margin)) for a, b in spans]
    out[0] = (max(0.0, spans[0][0] * FRAME_S - EDGE_S), out[0][1])
    out[-1] = (out[-1][0], min(total, spans[-1][1] * FRAME_S + EDGE_S))
    return out


def cut(x: np.ndarray, rate: int, spans: list[tuple[float, float]]) -> np.ndarray:
    return np.concatenate([x[int(a * rate) : int(b * rate)] for a, b in spans]).astype(np.float32)


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Linear-interpolation resampling: enough for measuring pitch (< 500 Hz), not for listening."""
    n = int(len(x) * dst / src)
    return np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x).astype(np.float32)


def high_band_share(x: np.ndarray, rate: int, above_hz: float = 4000.0) -> float:
    """The share of the signal's energy above `above_hz` (0.0 for silence)."""
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    total = float(power.sum())
    return float(power[np.fft.rfftfreq(len(x), 1 / rate) > above_hz].sum()) / total if total > 0 else 0.0


def check_length(duration: float) -> None:
    if duration < MIN_SPEECH_S:
        raise PermanentError(
            f"the sample is too short: {duration:.1f} s of speech after trimming silence "
            f"(at least {MIN_SPEECH_S:.0f} s)", hint=RECORD_HINT,
        )  # fmt: skip
    if duration > MAX_SPEECH_S:
        raise PermanentError(
            f"the sample is too long: {duration:.1f} s of speech after trimming silence "
            f"(at most {MAX_SPEECH_S:.0f} s)", hint=f"cut it to 5-30 s of speech; {RECORD_HINT}",
        )  # fmt: skip


def loudness_lufs(x: np.ndarray, rate: int, tmp: Path) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770) measured by ffmpeg's loudnorm filter."""
    wav = write_wav(tmp / "loudness.wav", np.clip(x * 32767, -32768, 32767).astype(np.int16), rate)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(wav), "-af", "loudnorm=print_format=json"]
    cmd += ["-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise PermanentError(f"ffmpeg could not measure the loudness: {proc.stderr[-500:].strip()}")
    value = float(json.loads(found.group(0))["input_i"])
    return value if np.isfinite(value) else -70.0


def normalised(x: np.ndarray, lufs: float) -> np.ndarray:
    """x scaled to TARGET_LUFS, with the gain lowered where the peak would pass PEAK_DBFS."""
    gain = 10 ** ((TARGET_LUFS - lufs) / 20)
    peak = float(np.max(np.abs(x))) or 1.0
    gain = min(gain, 10 ** (PEAK_DBFS / 20) / peak)
    return (x * gain).astype(np.float32)


def yin_f0(x: np.ndarray, rate: int) -> np.ndarray:
    """F0 (Hz) of each voiced YIN_HOP_S frame (YIN, steps 1-5 of de Cheveigné & Kawahara 2002)."""
    tau_min, tau_max = int(rate / F0_MAX_HZ), int(np.ceil(rate / F0_MIN_HZ))
    w = tau_max  # integration window: one longest period
    hop = int(rate * YIN_HOP_S)
    n = (len(x) - w - tau_max) // hop
    if n <= 0:
        return np.zeros(0)
    size = 1 << int(np.ceil(np.log2(w + tau_max + w)))
    floor = 10 ** ((frame_db(x, rate).max() - VOICED_DB) / 10) * w  # least energy of a voiced window
    f0: list[float] = []
    for start in range(0, n, 512):  # blocks bound the memory of the FFTs
        idx = (np.arange(start, min(n, start + 512)) * hop)[:, None] + np.arange(w + tau_max)
        frames = x[idx].astype(np.float64)
        spec = np.fft.rfft(frames, size) * np.conj(np.fft.rfft(frames[:, :w], size))
        r = np.fft.irfft(spec, size)[:, : tau_max + 1]  # r(tau) = sum_j x_j x_{j+tau}
        sq = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)], axis=1)
        energy = sq[:, w : w + tau_max + 1] - sq[:, : tau_max + 1]  # sum of x^2 over [tau, tau+w)
        d = energy[:, :1] + energy - 2 * r  # difference function, step 2
        cum = np.cumsum(d[:, 1:], axis=1)
        cmnd = np.ones_like(d)
        cmnd[:, 1:] = d[:, 1:] * np.arange(1, tau_max + 1) / np.maximum(cum, 1e-12)  # step 3
        loud = energy[:, 0] >= floor
        f0 += [f for row in cmnd[loud] if (f := _period(row, tau_min, tau_max, rate)) > 0]
    return np.asarray(f0)


def _period(cmnd: np.ndarray, tau_min: int, tau_max: int, rate: int) -> float:
    """Steps 4-5: the first dip under the threshold (else the deepest), refined by a parabola; 0 if unvoiced."""
    below = np.flatnonzero(cmnd[tau_min:tau_max] < YIN_THRESHOLD)
    tau = tau_min + int(below[0]) if below.size else tau_min + int(np.argmin(cmnd[tau_min:tau_max]))
    while tau + 1 < tau_max and cmnd[tau + 1] < cmnd[tau]:
        tau += 1
    if cmnd[tau] > YIN_VOICED:
        return 0.0
    a, b, c = cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) > 0 else 0.0
    return rate / (tau + shift)


def median_pitch_hz(x: np.ndarray, rate: int) -> float:
    """Median F0 of the voiced frames; 0.0 when none is voiced."""
    f0 = yin_f0(x, rate)
    return float(np.median(f0)) if f0.size else 0.0


def analyse(path: Path, text: str, tmp: Path) -> Sample:
    """Decode, trim, measure and normalise a voice sample whose words are `text`.
    PermanentError: not audio, silent, too short or too long, or no voiced speech in it."""
    raw = decode(path, ANALYSIS_RATE)
    spans = speech_spans(raw, ANALYSIS_RATE)
    speech = cut(raw, ANALYSIS_RATE, spans)
    duration = len(speech) / ANALYSIS_RATE
    check_length(duration)
    pitch = median_pitch_hz(speech, ANALYSIS_RATE)
    if pitch <= 0:
        raise PermanentError("the sample has no voiced speech (no pitch found)", hint=RECORD_HINT)
    voice = cut(decode(path, VOICE_RATE), VOICE_RATE, spans)
    lufs = loudness_lufs(voice, VOICE_RATE, tmp)
    wpm = len(words(text)) / duration * 60
    return Sample(speech, normalised(voice, lufs), Features(pitch, wpm, lufs, duration))


# ---- voice.prepare -----------------------------------------------------------------------------


class PrepareParams(BaseModel):
    audio: ArtifactInput
    text: str = Field(min_length=1, max_length=2000, description="the exact words spoken in the sample")


def prepare_sample(path: Path, text: str, tmp: Path, report: Reporter) -> tuple[Path, dict[str, Any]]:
    """The normalised voice WAV and its features; PermanentError when the sample is unusable."""
    report(0.05, "decoding and trimming the sample", force=True)
    sample = analyse(path, text, tmp)
    f = sample.features
    report(0.3, f"{duration_text(f.duration_s)} of speech, pitch {f.pitch_hz:.0f} Hz, {f.wpm:.0f} wpm", force=True)
    report.check()
    if high_band_share(sample.speech, ANALYSIS_RATE) < NARROWBAND_SHARE:  # refused by the band, not by a guess
        raise PermanentError(
            "the sample is telephone-band audio (nothing above 4 kHz, as in 8 kHz recordings and calls): the "
            "speech check's model is a 16 kHz one and cannot hear its words reliably",
            hint="record the sample at 16 kHz or more (a phone's voice-memo app, not a phone call), "
                 "or use a prepared voice",
        )
    match = speechcheck.check(sample.speech, ANALYSIS_RATE, text, should_stop=lambda: report.ctx.cancelled)
    report.check()
    if not match.ok:
        raise PermanentError(
            f"the sample's words do not match its reference text (heard: '{match.transcript}'; "
            f"word match {match.score:.2f}, at least {speechcheck.MIN_MATCH:.2f} needed)",
            hint="give the exact words spoken in the sample as its reference text, or record the text as written",
        )
    report(0.9, f"the words match (score {match.score:.2f}, aligned: {match.aligned})", force=True)
    out = write_wav(tmp / "voice.wav", np.clip(sample.voice * 32767, -32768, 32767).astype(np.int16), VOICE_RATE)
    return out, {**f.as_dict(), "transcript": match.transcript, "text_match": round(match.score, 3)}


@service(
    "voice.prepare",
    planes=["gpu"],
    description=(
        "Prepares a voice sample for reuse (e.g. in a profile): `audio` is a recording of 3-60 s of speech and "
        "`text` its exact words (English). Checks the words with a speech recogniser, cuts silences, "
        "normalises the loudness, and measures the voice. Outputs `voice` (the cleaned mono WAV, e.g. for "
        "tts.synthesize's reference_audio) and `features` (pitch_hz, wpm, loudness_db, duration_s, transcript, "
        "text_match). Fails on a silent, too short or too long sample, a non-audio file, or words that differ."
    ),
    params=PrepareParams,
    inputs={"audio": "audio", "text": "text"},
    outputs={"voice": "audio", "features": "json"},
    gpu=False,
    # measured on 2 busy CPU cores: 1.9 s for 12 s of speech, 7.4 s for 36 s, mostly the recogniser
    duration_s=5.0,
    memory_mb=150,
    features=(CostFeature(name="bytes", of=["params.audio"], typical=700e3),),  # 15 s of 24 kHz 16-bit WAV
    retry=RetryPolicy(max_attempts=1, backoff_s=0.0),
    timeout_s=300,
    probe=lambda settings: speechcheck.probe(settings) or probe_ffmpeg(settings),
)
async def prepare(ctx: TaskContext, p: PrepareParams) -> dict[str, Any]:
    async with scratch(ctx) as tmp:
        sample = await fetch(ctx, p.audio, tmp, "sample")
        out, features = await in_thread(prepare_sample, sample, p.text, tmp, Reporter(ctx))
        voice = await ctx.put_artifact("voice.wav", out, "audio/wav")
    await ctx.progress(1.0, f"voice prepared: {duration_text(features['duration_s'])}, "
                            f"pitch {features['pitch_hz']:.0f} Hz")
    return {"voice": voice, "features": features}
