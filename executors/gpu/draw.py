"""Drawing on torch (antialiased shapes, gradients) and typography with Pillow, for cards, portraits, subtitles."""

from __future__ import annotations

import colorsys
import hashlib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Where the built-in portrait puts the mouth, as fractions of the (square) frame; animate uses it too.
MOUTH = (0.5, 0.60)
#: The built-in portrait's lips are this wide, in units of the frame's shorter side.
LIPS_WIDTH = 0.10
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF", "/Library/Fonts")


# ---- colour --------------------------------------------------------------------------------------


def seed_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class Palette:
    dark: tuple[float, float, float]
    mid: tuple[float, float, float]
    light: tuple[float, float, float]
    accent: tuple[float, float, float]


def palette(seed: int) -> Palette:
    """A harmonious palette from a seed: analogous background hues and a complementary accent."""
    hue = (seed % 360) / 360

    def hls(h: float, lum: float, sat: float) -> tuple[float, float, float]:
        return colorsys.hls_to_rgb(h % 1.0, lum, sat)

    return Palette(
        hls(hue, 0.14, 0.55), hls(hue + 0.07, 0.38, 0.55), hls(hue + 0.12, 0.78, 0.45), hls(hue + 0.5, 0.6, 0.75)
    )


# ---- torch canvas --------------------------------------------------------------------------------


class Canvas:
    """An RGB float image (3, H, W) on a torch device with antialiased shape compositing.

    Coordinates are in units of the shorter side (0..1 across it), centred on the image."""

    def __init__(
        self, width: int, height: int, device: str = "cpu", on_step: Callable[[int], None] | None = None
    ) -> None:
        import torch

        self.torch = torch
        self.on_step = on_step
        self.steps = 0
        self.w, self.h = width, height
        s = min(width, height)
        self.px = 1.0 / s  # one pixel in canvas units: the antialiasing width
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5 - height / 2) / s + 0.5
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5 - width / 2) / s + 0.5
        self.y, self.x = torch.meshgrid(ys, xs, indexing="ij")
        self.img = torch.zeros(3, height, width, device=device)

    def _col(self, rgb: tuple[float, float, float]) -> Any:
        return self.torch.tensor(rgb, device=self.img.device, dtype=self.torch.float32).view(3, 1, 1)

    def fill(self, mask: Any, rgb: tuple[float, float, float], alpha: float = 1.0) -> None:
        m = (mask * alpha).clamp(0, 1)
        self.img = self.img * (1 - m) + self._col(rgb) * m
        self.steps += 1
        if self.on_step is not None:
            self.on_step(self.steps)

    def vertical_gradient(self, top: tuple[float, float, float], bottom: tuple[float, float, float]) -> None:
        t = ((self.y - self.y.min()) / (self.y.max() - self.y.min() + 1e-6)).unsqueeze(0)
        self.img = self._col(top) * (1 - t) + self._col(bottom) * t

    def diagonal_gradient(self, a: tuple[float, float, float], b: tuple[float, float, float], angle: float) -> None:
        torch = self.torch
        d = (self.x - 0.5) * float(np.cos(angle)) + (self.y - 0.5) * float(np.sin(angle))
        t = ((d - d.min()) / (d.max() - d.min() + 1e-6)).unsqueeze(0)
        t = t * t * (3 - 2 * t)  # smoothstep: softer ends
        self.img = torch.lerp(self._col(a).expand_as(self.img), self._col(b).expand_as(self.img), t)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, blur: float = 0.0) -> Any:
        """Coverage mask of an ellipse, antialiased (blur widens the edge, in canvas units)."""
        r = min(rx, ry)
        d = (((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2).sqrt() - 1.0
        return (0.5 - d * r / (self.px + blur)).clamp(0, 1)

    def rounded_rect(self, cx: float, cy: float, hw: float, hh: float, radius: float) -> Any:
        torch = self.torch
        qx = (self.x - cx).abs() - (hw - radius)
        qy = (self.y - cy).abs() - (hh - radius)
        outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
        d = outside + torch.minimum(torch.maximum(qx, qy), torch.zeros_like(qx)) - radius
        return (0.5 - d / self.px).clamp(0, 1)

    def band(self, y0: float, y1: float) -> Any:
        """1 between y0 and y1, antialiased."""
        return ((self.y - y0) / self.px + 0.5).clamp(0, 1) * ((y1 - self.y) / self.px + 0.5).clamp(0, 1)

    def vignette(self, strength: float) -> None:
        r = ((self.x - 0.5) ** 2 + (self.y - 0.5) ** 2).sqrt()
        self.img = self.img * (1 - strength * (r / 0.75).clamp(0, 1) ** 2).unsqueeze(0)

    def grain(self, seed: int, amount: float) -> None:
        torch = self.torch
        g = torch.Generator(device="cpu").manual_seed(seed & 0x7FFFFFFF)
        noise = torch.rand(1, self.h, self.w, generator=g).to(self.img.device) - 0.5
        self.img = (self.img + noise * amount).clamp(0, 1)

    def to_pil(self) -> Image.Image:
        arr = self.img.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        return Image.fromarray(arr, "RGB")


# ---- typography (Pillow) ---------------------------------------------------------------------------


@cache
def font_file(bold: bool) -> str | None:
    names = (
        ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf") if bold else ("DejaVuSans.ttf", "LiberationSans-Regular.ttf")
    )
    for d in FONT_DIRS:
        for n in names:
            if (Path(d) / n).exists():
                return str(Path(d) / n)
    return None


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font at `size` px: DejaVu/Liberation when installed, else Pillow's bundled scalable font."""
    path = font_file(bold)
    if path:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def text_width(draw: ImageDraw.ImageDraw, text: str, f: Any) -> float:
    return float(draw.textlength(text, font=f))


def fit_lines(
    draw: ImageDraw.ImageDraw, text: str, max_w: float, max_lines: int, size: int, min_size: int, bold: bool = False
) -> tuple[Any, list[str]]:
    """The largest font (from size down to min_size) at which text wraps into max_lines lines of max_w px."""
    text = " ".join(text.split())
    for s in range(size, min_size - 1, -max(1, size // 24)):
        f = font(s, bold)
        avg = max(1.0, text_width(draw, "abcdefghijklmnopqrstuvwxyz", f) / 26)
        lines = textwrap.wrap(text, width=max(4, int(max_w / avg)))
        lines = _rewrap(draw, lines, f, max_w)
        if len(lines) <= max_lines:
            return f, lines
    f = font(min_size, bold)
    lines = _rewrap(draw, textwrap.wrap(text, width=max(4, int(max_w / max(1.0, text_width(draw, "n", f))))), f, max_w)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(" .,;:") + "…"
    return f, lines


def _rewrap(draw: ImageDraw.ImageDraw, lines: list[str], f: Any, max_w: float) -> list[str]:
    """Re-wrap greedily by measured width (the character-count guess can overflow)."""
    words = " ".join(lines).split()
    out: list[str] = []
    for w in words:
        if out and text_width(draw, f"{out[-1]} {w}", f) <= max_w:
            out[-1] = f"{out[-1]} {w}"
        else:
            out.append(w)
    return out


def draw_centered(
    draw: ImageDraw.ImageDraw,
    lines: list[str],
    f: Any,
    cx: float,
    top: float,
    fill: tuple[int, ...],
    spacing: float = 1.2,
    shadow: tuple[int, ...] | None = None,
) -> float:
    """Draw lines centred on cx from `top`; returns the y below the last line."""
    asc, desc = f.getmetrics() if hasattr(f, "getmetrics") else (f.size, 0)
    step = (asc + desc) * spacing
    y = top
    for line in lines:
        x = cx - text_width(draw, line, f) / 2
        if shadow:
            off = max(1, int(step / 20))
            draw.text((x + off, y + off), line, font=f, fill=shadow)
        draw.text((x, y), line, font=f, fill=fill)
        y += step
    return y


def caption_overlay(text: str, width: int, height: int, *, max_lines: int = 2) -> np.ndarray:
    """An RGBA subtitle overlay (H, W, 4) uint8: wrapped white text on a translucent box near the bottom."""
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    size = max(12, height // 18)
    f, lines = fit_lines(draw, text, width * 0.86, max_lines, size, max(10, size * 2 // 3), bold=True)
    asc, desc = f.getmetrics() if hasattr(f, "getmetrics") else (size, 0)
    step = (asc + desc) * 1.15
    box_h = step * len(lines) + step * 0.5
    top = height * 0.95 - box_h
    box_w = max(text_width(draw, ln, f) for ln in lines) + size
    draw.rounded_rectangle(
        ((width - box_w) / 2, top, (width + box_w) / 2, top + box_h), radius=size // 3, fill=(0, 0, 0, 150)
    )
    draw_centered(draw, lines, f, width / 2, top + step * 0.25, (255, 255, 255, 255), spacing=1.15)
    return np.asarray(img)
