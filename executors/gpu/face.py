"""Where a portrait's face and mouth are: the drawer's own note, else OpenCV's bundled Haar cascades.

A picture drawn by image.render says where it drew the mouth (a PNG text chunk, `spinbot:mouth`, valid only
for the size it was drawn at). Any other picture is searched with the frontal-face cascades that ship in
`opencv-python-headless` (`cv2.data.haarcascades`); inside the face found, the smile cascade places the
lips, and face proportions place them when it finds none. No face: `find_mouth` returns None and the
animator says so instead of drawing a mouth somewhere.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

#: The PNG text key image.render writes: {"x", "y", "width"} in pixels of the picture and its "size".
MOUTH_KEY = "spinbot:mouth"
#: Detection runs on a copy whose longer side is at most this many pixels (Haar cascades cost ~ pixels).
DETECT_SIDE = 640
#: Inside a frontal-face cascade's box (brows to chin), the lips' centre and width as fractions of the box.
LIPS_IN_BOX = (0.5, 0.79, 0.40)


#: How each way of finding the mouth reads in a node's log.
FOUND_BY = {"drawn": "where the drawing put it", "smile cascade": "OpenCV's face and smile detectors",
            "face proportions": "OpenCV's face detector and face proportions"}


@dataclass(frozen=True, slots=True)
class Mouth:
    """A mouth in pixels of the picture it was found in: centre (x, y), width, the face box (x, y, w, h)."""

    x: float
    y: float
    width: float
    face: tuple[float, float, float, float]
    found_by: str  # "drawn" (image.render's note), "smile cascade" or "face proportions"

    def describe(self, size: tuple[int, int]) -> dict[str, Any]:
        """The mouth as fractions of a picture of `size` (width, height): what the node's output shows."""
        w, h = size
        return {"x": round(float(self.x) / w, 3), "y": round(float(self.y) / h, 3),
                "width": round(float(self.width) / w, 3),
                "found_by": self.found_by}

    def cropped(self, box: tuple[int, int, int, int], scale: float) -> Mouth:
        """The same mouth in a crop `box` (left, top, right, bottom) of the picture, resized by `scale`."""
        fx, fy, fw, fh = self.face
        return Mouth((self.x - box[0]) * scale, (self.y - box[1]) * scale, self.width * scale,
                     ((fx - box[0]) * scale, (fy - box[1]) * scale, fw * scale, fh * scale), self.found_by)


def mouth_note(x: float, y: float, width: float, size: tuple[int, int]) -> str:
    """The PNG text value a drawer writes under MOUTH_KEY for a mouth it drew at (x, y), `width` px wide."""
    return json.dumps({"x": round(x, 2), "y": round(y, 2), "width": round(width, 2), "size": list(size)})


def drawn_mouth(path: Path) -> Mouth | None:
    """The mouth the picture file's drawer noted, if the note is there and was made for the picture's size."""
    try:
        with Image.open(path) as img:  # the header and text chunks only: no pixel is decoded
            note, size = (getattr(img, "text", None) or img.info).get(MOUTH_KEY), img.size
    except (OSError, ValueError, SyntaxError):
        return None
    if not note:
        return None
    try:
        d = json.loads(note)
        if list(d["size"]) != list(size):
            return None  # resized or cropped since it was drawn: the note no longer holds
        x, y, w = float(d["x"]), float(d["y"]), float(d["width"])
    except (ValueError, KeyError, TypeError):
        return None
    return Mouth(x, y, w, (x - w * 1.8, y - w * 3.2, w * 3.6, w * 4.0), "drawn")


@cache
def _cascade(name: str) -> Any:
    import cv2
    from cv2.data import haarcascades  # the folder of cascades that ships in the wheel

    c = cv2.CascadeClassifier(f"{haarcascades}haarcascade_{name}.xml")
    if c.empty():
        raise RuntimeError(f"OpenCV's {name} cascade did not load from {haarcascades}")
    return c


def _largest(boxes: Any) -> tuple[int, int, int, int] | None:
    if len(boxes) == 0:
        return None
    x, y, w, h = max(boxes, key=lambda b: int(b[2]) * int(b[3]))
    return int(x), int(y), int(w), int(h)


def detect_mouth(rgb: np.ndarray) -> Mouth | None:
    """The largest front-facing face in an RGB array (H, W, 3) uint8 and its lips, in its pixels; None if none."""
    import cv2

    h0, w0 = rgb.shape[:2]
    s = min(1.0, DETECT_SIDE / max(h0, w0))
    small = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    least = max(20, min(gray.shape) // 12)
    face = None
    for name, neighbours in (("frontalface_default", 5), ("frontalface_alt2", 3)):
        face = _largest(_cascade(name).detectMultiScale(gray, 1.1, neighbours, minSize=(least, least)))
        if face is not None:
            break
    if face is None:
        return None
    fx, fy, fw, fh = face
    px, py, pw = fx + LIPS_IN_BOX[0] * fw, fy + LIPS_IN_BOX[1] * fh, LIPS_IN_BOX[2] * fw
    x, y, width, found_by = px, py, pw, "face proportions"
    lower = gray[fy + fh // 2 : fy + fh, fx : fx + fw]
    smiles = _cascade("smile").detectMultiScale(lower, 1.1, 15, minSize=(max(8, fw // 6), max(4, fh // 12)))
    near = [(sx + sw / 2 + fx, sy + sh / 2 + fy + fh // 2, sw) for sx, sy, sw, sh in smiles]
    near = [m for m in near if abs(m[0] - px) < 0.15 * fw and abs(m[1] - py) < 0.12 * fh]
    if near:
        x, y, sw = min(near, key=lambda m: (m[0] - px) ** 2 + (m[1] - py) ** 2)
        width, found_by = float(np.clip(sw * 0.8, 0.28 * fw, 0.5 * fw)), "smile cascade"
    return Mouth(x / s, y / s, width / s, (fx / s, fy / s, fw / s, fh / s), found_by)


def find_mouth(path: Path, img: Image.Image) -> Mouth | None:
    """The mouth of the picture in `path` (decoded upright as `img`), in its pixels: the drawer's note when the
    file has one, else the face detectors'."""
    return drawn_mouth(path) or detect_mouth(np.asarray(img.convert("RGB")))


def square_around(size: tuple[int, int], mouth: Mouth | None) -> tuple[int, int, int, int]:
    """The largest square crop (left, top, right, bottom) of a picture of `size`, centred on the face if any."""
    w, h = size
    s = min(w, h)
    cx, cy = (w / 2, h / 2)
    if mouth is not None:
        fx, fy, fw, fh = mouth.face
        cx, cy = fx + fw / 2, fy + fh / 2
    left = int(min(max(0, round(cx - s / 2)), w - s))
    top = int(min(max(0, round(cy - s / 2)), h - s))
    return left, top, left + s, top + s
