"""Media plumbing shared by the GPU tasks: WAV/audio decoding, ffmpeg frame pipes, PyAV frame reading."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import tempfile
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from spinbot.errors import EngineUnavailable, PermanentError

log = logging.getLogger(__name__)


def ffmpeg_exe() -> str:
    """The ffmpeg binary that the imageio-ffmpeg wheel ships."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise EngineUnavailable("no ffmpeg binary", hint="pip install imageio-ffmpeg (make up installs it)") from e


# ---- audio -------------------------------------------------------------------------------------


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit mono PCM WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return path


def load_audio(path: Path, rate: int = 16_000) -> np.ndarray:
    """Any audio (or the audio of a video) as float32 mono samples in [-1, 1] at `rate`."""
    import av

    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise PermanentError(f"{path.name} has no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            for frame in container.decode(audio=0):
                for f in resampler.resample(frame):
                    out.append(f.to_ndarray().reshape(-1))
            for f in resampler.resample(None):
                out.append(f.to_ndarray().reshape(-1))
    except av.error.FFmpegError as e:
        raise PermanentError(f"cannot decode audio from {path.name}: {e.strerror or type(e).__name__}") from e
    if not out:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(out).astype(np.float32) / 32768.0


def envelope(samples: np.ndarray, rate: int, fps: float, n_frames: int) -> np.ndarray:
    """Per-video-frame loudness in [0, 1]: windowed RMS, fast attack / slower release, normalised."""
    hop = rate / fps
    win = int(hop * 1.5)
    rms = np.zeros(n_frames, dtype=np.float32)
    for i in range(n_frames):
        centre = int((i + 0.5) * hop)
        seg = samples[max(0, centre - win // 2) : centre + win // 2]
        rms[i] = float(np.sqrt(np.mean(seg * seg))) if seg.size else 0.0
    ref = float(np.percentile(rms, 95)) if n_frames else 0.0
    if ref <= 1e-6:
        return np.zeros(n_frames, dtype=np.float32)
    level = np.clip(rms / ref, 0.0, 1.0)
    # Speech gate: below ~-26 dB of the loud parts the mouth is closed.
    level = np.clip((level - 0.05) / 0.95, 0.0, 1.0)
    smooth = np.zeros_like(level)
    state = 0.0
    for i, v in enumerate(level):
        k = 0.7 if v > state else 0.35  # open fast, close a little slower: looks like speech
        state += k * (v - state)
        smooth[i] = state
    return smooth


# ---- video -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    has_audio: bool


def even(n: int) -> int:
    """n rounded down to an even number (H.264 in yuv420p needs even sizes)."""
    return n - n % 2


def probe(path: Path) -> VideoInfo:
    """Size, rate, frame count (counted when the container does not say) and audio presence."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise PermanentError(f"{path.name} has no video stream")
            v = c.streams.video[0]
            fps = float(v.average_rate or v.guessed_rate or 25)
            frames = v.frames
            if not frames:
                frames = sum(1 for _ in c.demux(v) if _.size)
            duration = frames / fps if fps else 0.0
            return VideoInfo(
                v.codec_context.width, v.codec_context.height, fps, frames, duration, bool(c.streams.audio)
            )
    except av.error.FFmpegError as e:
        raise PermanentError(f"cannot read video {path.name}: {e.strerror or type(e).__name__}") from e


def read_frames(path: Path, batch: int | Callable[[], int]) -> Iterator[np.ndarray]:
    """Decoded RGB frames in batches of shape (n, H, W, 3), uint8; batch may be a callable (a Batcher)."""
    import av

    size = batch if callable(batch) else (lambda: batch)
    buf: list[np.ndarray] = []
    want = size()
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in c.decode(stream):
            buf.append(frame.to_ndarray(format="rgb24"))
            if len(buf) >= want:
                yield np.stack(buf)
                buf = []
                want = size()
    if buf:
        yield np.stack(buf)


class VideoWriter:
    """Pipes raw RGB frames into ffmpeg (H.264, yuv420p, +faststart), muxing an audio input if given."""

    def __init__(
        self,
        out: Path,
        width: int,
        height: int,
        fps: float,
        *,
        audio: Path | None = None,
        audio_copy: bool = False,
        crf: int = 20,
        preset: str = "veryfast",
    ) -> None:
        if width % 2 or height % 2:
            raise PermanentError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
        self.out, self.width, self.height = out, width, height
        cmd = [
            ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
            "-r", str(Fraction(fps).limit_denominator(1001)), "-i", "pipe:0",
        ]  # fmt: skip
        if audio is not None:
            cmd += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0?"]
            cmd += ["-c:a", "copy"] if audio_copy else ["-c:a", "aac", "-b:a", "128k"]
        cmd += [
            "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(out),
        ]  # fmt: skip
        # stderr goes to a file: a full stderr pipe would block ffmpeg and then us.
        self._err: IO[bytes] = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._err)
        self.frames = 0

    def write(self, frames: np.ndarray) -> None:
        """frames: uint8 (n, H, W, 3)."""
        if frames.shape[1:] != (self.height, self.width, 3):
            raise ValueError(f"frame shape {frames.shape[1:]} != {(self.height, self.width, 3)}")
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frames, dtype=np.uint8).tobytes())
        except BrokenPipeError:
            self._fail()
        self.frames += len(frames)

    def close(self) -> Path:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        if self._proc.wait() != 0:
            self._fail()
        self._err.close()
        return self.out

    def abort(self) -> None:
        self._kill()
        self._err.close()
        self.out.unlink(missing_ok=True)

    def _kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._proc.stdin.close()

    def _fail(self) -> None:
        self._kill()
        self._err.seek(0)
        msg = self._err.read().decode(errors="replace")[-2000:]
        self._err.close()
        raise PermanentError(f"ffmpeg failed writing {self.out.name}: {msg.strip()}")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def run_ffmpeg(args: list[str]) -> None:
    """One ffmpeg invocation; its stderr becomes the error message on failure."""
    proc = subprocess.run([ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args], capture_output=True)
    if proc.returncode != 0:
        raise PermanentError(f"ffmpeg failed: {proc.stderr.decode(errors='replace')[-2000:].strip()}")


def to_tensor(frames: np.ndarray, device: str) -> Any:
    """uint8 (n, H, W, 3) -> float32 (n, 3, H, W) in [0, 1] on device."""
    import torch

    t = torch.from_numpy(np.require(frames, np.uint8, ["C", "W"])).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def from_tensor(t: Any) -> np.ndarray:
    """float (n, 3, H, W) in [0, 1] -> uint8 (n, H, W, 3) on the CPU."""
    import torch

    return t.clamp(0, 1).mul(255).round().to(dtype=torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def probe_ffmpeg(settings: Any) -> str | None:
    """Service probe: the video services need the ffmpeg binary."""
    try:
        ffmpeg_exe()
    except EngineUnavailable as e:
        return f"{e.message} ({e.hint})"
    return None
