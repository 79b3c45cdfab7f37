"""The upload decoder: every file that enters (multipart, data URL, profile portrait) is read by content
at the door, within limits, before it is stored.

- What it is comes from its bytes, never from its name or declared type (a PNG sent as
  `application/octet-stream` is a PNG; a text file named `face.png` is refused).
- Pictures: the pixel count is checked from the header before decoding (413), then every pixel is
  decoded (a truncated file is refused now, not in a job later); spinbot.images reads them upright.
- Text: up to MAX_TEXT_FILE_BYTES of UTF-8 with no control characters (.txt, .md, .srt: words to speak or
  subtitles).
- Audio: every frame is decoded. Video: every packet is read, the first frame decoded, the frame size
  checked against the same pixel limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spinbot.images import ImageRefused, load_image
from spinbot.text import MAX_TEXT_FILE_BYTES, file_text

#: Container formats (FFmpeg's demuxer names) as MIME types, by the kind of stream they carry.
_AV_TYPES = {
    "wav": "audio/wav", "mp3": "audio/mpeg", "ogg": "audio/ogg", "flac": "audio/flac", "aac": "audio/aac",
    "aiff": "audio/aiff", "amr": "audio/amr", "caf": "audio/x-caf", "avi": "video/x-msvideo",
    "mov": "video/mp4", "matroska": "video/webm", "mpegts": "video/mp2t",
}
HINT = "attach a real image (PNG, JPEG, WebP, GIF), audio (WAV, MP3, OGG, M4A), video or UTF-8 text file"


class Refused(Exception):
    """Why a file is refused: 415 (`not what it claims`, undecodable) or 413 (over the pixel limit)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the content is: `kind` (image, audio, video, text) and its MIME type, as read from the bytes."""

    kind: str  # image, audio, video or text
    content_type: str


def decode(path: Path, declared: str, max_pixels: int) -> Decoded:
    """Sniff and fully decode the file at `path` (blocking: run it in a thread). `declared`: the type
    the client gave, used only to name what was expected when nothing decodes, and a text file's type
    (text/plain unless a text/* type is declared). Refused: 415 or 413."""
    if (text := _text(path, declared)) is not None:
        return text
    try:
        _, info = load_image(path, max_pixels)
        return Decoded("image", info.content_type)
    except ImageRefused as e:
        if e.too_large:
            raise Refused(413, e.why) from None
        if not e.why.startswith("cannot identify image file"):  # a picture, but broken
            raise Refused(415, f"a damaged image: {e.why}") from None
        not_image = e.why
    try:
        return _decode_av(path, declared, max_pixels)
    except Refused as e:
        if e.status == 413 or declared.split("/", 1)[0] in ("audio", "video"):
            raise
        expected = declared.split("/", 1)[0]
        raise Refused(415, f"not an image ({not_image})" if expected == "image" else
                      "neither an image nor audio or video that can be decoded") from None


def _text(path: Path, declared: str) -> Decoded | None:
    """A text file: up to MAX_TEXT_FILE_BYTES of UTF-8 without control characters (its words are what a plan
    speaks or subtitles); None when the bytes are not text, are too many to be read as words, or were sent as a
    picture, a recording or a video (which they are not: the decoders below say so)."""
    if declared.split("/", 1)[0] in ("image", "audio", "video") or path.stat().st_size > MAX_TEXT_FILE_BYTES:
        return None
    if file_text(path.read_bytes()) is None:
        return None
    return Decoded("text", declared if declared.startswith("text/") else "text/plain")


def _decode_av(path: Path, declared: str, max_pixels: int) -> Decoded:
    import av

    expected = declared.split("/", 1)[0]
    try:
        with av.open(str(path)) as container:
            audio = list(container.streams.audio)
            video = [s for s in container.streams.video
                     if not s.disposition & (av.stream.Disposition.attached_pic | av.stream.Disposition.still_image)]
            if not audio and not video:
                raise Refused(415, f"not {_a(expected)} (it holds no audio or video stream)")
            kind = "audio" if audio and (expected == "audio" or not video) else "video"
            if kind == "video":
                _check_frame(video[0], max_pixels)
                frames = 0
                for packet in container.demux(video[0]):  # every packet read; frames decoded until one comes
                    frames = frames or len(packet.decode())
                if not frames:
                    raise Refused(415, "not a video (no frame decodes)")
            else:
                frames = sum(1 for _ in container.decode(audio[0]))
                if not frames:
                    raise Refused(415, "not audio (it decodes to no samples)")
            name = container.format.name.split(",", 1)[0]
    except av.FFmpegError as e:
        raise Refused(415, f"not {_a(expected)} ({e.strerror or type(e).__name__})") from None
    except (OSError, ValueError) as e:
        raise Refused(415, f"not {_a(expected)} ({e})") from None
    known = _AV_TYPES.get(name)
    if known is None:
        content_type = declared if expected == kind else f"{kind}/{name}"
    else:
        content_type = f"{kind}/{known.split('/', 1)[1]}"
    return Decoded(kind, content_type)


def _check_frame(stream: object, max_pixels: int) -> None:
    ctx = getattr(stream, "codec_context", None)
    w, h = getattr(ctx, "width", 0) or 0, getattr(ctx, "height", 0) or 0
    if w * h > max_pixels:
        raise Refused(413, f"its frames are {w} x {h} pixels (at most {max_pixels / 1e6:.0f} megapixels are read)")


def _a(kind: str) -> str:
    return {"image": "an image", "audio": "audio", "video": "a video"}.get(kind, "an image, audio or video")
