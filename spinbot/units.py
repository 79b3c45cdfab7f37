"""Sizes, lengths and kinds of file as people read them; web/static/js/dom.js (formatBytes, formatDuration)
says them the same way in the browser."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from typing import Any

#: One kilobyte, as the SPINBOT_*_MB settings count: 1024 bytes (a megabyte is 1024 x 1024).
KB = 1024
MB = KB * KB
#: What a file of each top-level content type is, in words ("a PNG image", "a WAV audio file").
KIND_NAMES = {"image": "image", "audio": "audio file", "video": "video", "text": "text file"}
FORMAT_NAMES = {"mpeg": "MP3", "plain": "plain", "svg+xml": "SVG", "octet-stream": ""}


def size_text(size: float) -> str:
    """Bytes as people read them: "512 bytes", "28 KB", "3.4 MB", "1.2 GB" (1 KB = 1024 bytes, as the settings
    count; never "0.0 MB")."""
    if size < KB:
        return f"{max(0, int(size))} bytes"
    if size < MB:
        return f"{max(1, round(size / KB))} KB"
    return f"{size / MB:.1f} MB" if size < KB * MB else f"{size / (KB * MB):.1f} GB"


def duration_text(seconds: float) -> str:
    """Seconds as people read them: "0.4 s", "8.2 s", "45 s", "22 min 30 s", "1 h 5 min"; "unknown" for NaN."""
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 59.5:
        return f"{round(seconds)} s"
    whole = round(seconds)
    minutes, sec = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def estimate_text(estimate: Mapping[str, Any]) -> str:
    """An evaluation's estimate (its JSON) for people: its summary ("about 40 s (30-60 s)"), else "about N"."""
    return str(estimate.get("summary") or f"about {duration_text(float(estimate.get('duration_s') or 0))}")


def kind_text(content_type: str, *, article: bool = True) -> str:
    """A content type in words, with its article: "a PNG image", "a WAV audio file", "an MP3 audio file",
    "a plain text file", "a PDF file" (without it: "PNG image")."""
    major, _, sub = content_type.split(";")[0].strip().lower().partition("/")
    name = FORMAT_NAMES.get(sub, sub.removeprefix("x-").removeprefix("vnd.").upper())
    noun = f"{name} {KIND_NAMES.get(major, 'file')}" if name else KIND_NAMES.get(major, "file")
    if not article:
        return noun
    return f"{'an' if noun[0] in 'AEIOUaeiou' or noun.startswith(('MP', 'M4')) else 'a'} {noun}"


def shorten(text: str, width: int) -> str:
    """`text` on one line in at most `width` characters, cut between words with "…" (a single word longer than
    `width` is cut within it)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    cut = textwrap.shorten(flat, width=width, placeholder="…")
    return cut if cut != "…" else flat[: width - 1] + "…"
