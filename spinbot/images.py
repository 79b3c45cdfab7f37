"""Pictures as people upload them, read one way everywhere: the upload check at the API's door and the
services that use a picture open it with `load_image`.

What a phone or an editor writes and a naive `Image.open(...).convert("RGB")` gets wrong: the EXIF
orientation (a portrait lying on its side), 16-bit and float pixels (clipped to white), palettes with
transparency, truncated files (an error long after the upload), and decompression bombs (a few KB
that decode to gigabytes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Pillow refuses on its own only past twice its MAX_IMAGE_PIXELS (about 179 MP): limits stay below that.
PILLOW_HARD_LIMIT = 2 * (Image.MAX_IMAGE_PIXELS or 0)


class ImageRefused(Exception):
    """The file is not a picture this system can read; `too_large`: it is one, over the pixel limit."""

    def __init__(self, why: str, *, too_large: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.too_large = too_large


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the file is: its format's MIME type and its upright size in pixels."""

    content_type: str
    width: int
    height: int


def load_image(path: Path, max_pixels: int = PILLOW_HARD_LIMIT) -> tuple[Image.Image, ImageInfo]:
    """The picture in `path` decoded in full, upright (EXIF orientation applied), as 8-bit RGB or RGBA.

    max_pixels: width x height refused (ImageRefused with too_large) from the header, before any pixel is
    decoded. ImageRefused: not a picture, truncated or corrupt.
    """
    try:
        im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:  # Pillow's own, coarser limit
        said = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(said.group(1)) / 1e6:.0f} megapixels" if said else f"more than {max_pixels / 1e6:.0f} megapixels"
        raise ImageRefused(f"it has {size} (at most {max_pixels / 1e6:.0f} are read)", too_large=True) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageRefused(str(e) or type(e).__name__) from None
    with im:
        width, height = im.size
        if width * height > max_pixels:
            raise ImageRefused(f"it is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels; "
                               f"at most {max_pixels / 1e6:.0f} are read)", too_large=True)
        fmt = im.format or "unknown"
        try:
            im.load()  # every pixel: a truncated or corrupt file fails here, not in a job later
            upright = ImageOps.exif_transpose(im)
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            raise ImageRefused(str(e) or type(e).__name__) from None
        out = eight_bit(upright)
    info = ImageInfo(Image.MIME.get(fmt) or f"image/{fmt.lower()}", out.width, out.height)
    return out, info


def eight_bit(im: Image.Image) -> Image.Image:
    """`im` as 8-bit RGB (RGBA when it has transparency), its tones scaled from 16-bit or float pixels."""
    if im.mode in ("RGB", "RGBA"):
        return im
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        peak = a.max(initial=0)
        # I;16: 16-bit by its format; I (32-bit) and F say nothing of the range: judged by the values
        top = 65535.0 if im.mode.startswith("I;16") or peak > 255 else 1.0 if im.mode == "F" and peak <= 1 else 255.0
        return Image.fromarray(np.clip(a / top * 255 + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    has_alpha = "A" in im.mode or "transparency" in im.info
    return im.convert("RGBA" if has_alpha else "RGB")
