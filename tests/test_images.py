"""Pictures are read upright, in their real tones, whole or not at all (spinbot/images.py; issue 22, items 9-11)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spinbot.images import ImageRefused, load_image

TOP, BOTTOM = (220, 30, 30), (30, 30, 220)


def upright_portrait() -> Image.Image:
    """40 wide, 80 tall: red above, blue below."""
    a = np.zeros((80, 40, 3), np.uint8)
    a[:40], a[40:] = TOP, BOTTOM
    return Image.fromarray(a, "RGB")


def phone_jpeg(path: Path, orientation: int) -> Path:
    """What a phone writes: the sensor's pixels as they were read, and an EXIF tag saying how to turn them."""
    t = Image.Transpose
    turn = {1: None, 6: t.ROTATE_90, 8: t.ROTATE_270, 3: t.ROTATE_180, 2: t.FLIP_LEFT_RIGHT}[orientation]
    stored = upright_portrait() if turn is None else upright_portrait().transpose(turn)  # 6: shown turned 90 cw
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, "JPEG", quality=95, exif=exif)
    return path


@pytest.mark.parametrize("orientation", [1, 2, 3, 6, 8])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    im, info = load_image(phone_jpeg(tmp_path / "p.jpg", orientation))
    assert im.size == (40, 80) and (info.width, info.height) == (40, 80), orientation
    a = np.asarray(im).astype(int)
    assert np.abs(a[10, 20] - TOP).max() < 40 and np.abs(a[70, 20] - BOTTOM).max() < 40, orientation
    assert info.content_type == "image/jpeg"


def _save(path: Path, im: Image.Image, fmt: str = "PNG") -> Path:
    im.save(path, fmt)
    return path


def test_16_bit_and_float_tones_are_scaled_not_clipped(tmp_path: Path) -> None:
    ramp16 = np.tile(np.linspace(0, 65535, 64), (16, 1)).astype(np.uint16)
    grey16 = _save(tmp_path / "g16.png", Image.fromarray(ramp16))  # the field report: 16-bit greyscale PNG
    with Image.open(grey16) as opened:
        assert opened.mode == "I;16"
    im, _ = load_image(grey16)
    a = np.asarray(im)
    assert im.mode == "RGB" and a[0, 0, 0] == 0 and a[0, -1, 0] == 255 and 120 < a.mean() < 135, a.mean()
    dark16 = _save(tmp_path / "d16.png", Image.fromarray(np.full((8, 8), 200, np.uint16)))  # dark, values < 256
    assert np.asarray(load_image(dark16)[0]).max() <= 1
    i32 = _save(tmp_path / "i32.tif", Image.fromarray(ramp16.astype(np.int32), "I"), "TIFF")
    assert 120 < np.asarray(load_image(i32)[0]).mean() < 135
    ramp_f = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (16, 1))
    tiff = _save(tmp_path / "f.tif", Image.fromarray(ramp_f, "F"), "TIFF")
    assert 120 < np.asarray(load_image(tiff)[0]).mean() < 135


def test_other_modes_become_rgb_or_rgba(tmp_path: Path) -> None:
    cmyk = _save(tmp_path / "c.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")
    im, _ = load_image(cmyk)
    assert im.mode == "RGB" and np.asarray(im)[4, 4, 0] > 200 and np.asarray(im)[4, 4, 2] < 60
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.info["transparency"] = 0
    assert load_image(_save(tmp_path / "p.png", palette))[0].mode == "RGBA"
    assert load_image(_save(tmp_path / "la.png", Image.new("LA", (8, 8), (128, 100))))[0].mode == "RGBA"
    assert load_image(_save(tmp_path / "1.png", Image.new("1", (8, 8), 1)))[0].mode == "RGB"


def test_truncated_and_oversized_files_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(buf, "JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageRefused, match="truncated") as e:
        load_image(cut)
    assert not e.value.too_large
    big = _save(tmp_path / "big.png", Image.new("L", (300, 200)))
    with pytest.raises(ImageRefused, match="300 x 200") as e:
        load_image(big, max_pixels=50_000)
    assert e.value.too_large
    assert load_image(big, max_pixels=60_000)[0].size == (300, 200)
