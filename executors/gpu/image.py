"""image.render: a designed title card or portrait drawn with torch and Pillow, or a ComfyUI workflow."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo
from pydantic import BaseModel, Field

from executors.gpu import comfyui, device, measure
from executors.gpu.common import Reporter, fetch, in_thread, off_loop, scratch
from executors.gpu.draw import LIPS_WIDTH, MOUTH, Canvas, Palette, draw_centered, fit_lines, palette, seed_of
from executors.gpu.face import MOUTH_KEY, mouth_note
from spinbot.checks import Check
from spinbot.manifest import CostFeature, Offer, RetryPolicy
from spinbot.registry import service
from spinbot.task import TaskContext

log = logging.getLogger(__name__)

SKIN = [(0.96, 0.80, 0.69), (0.91, 0.72, 0.58), (0.80, 0.60, 0.45), (0.63, 0.45, 0.33), (0.45, 0.31, 0.22)]
HAIR = [(0.10, 0.07, 0.05), (0.30, 0.18, 0.10), (0.55, 0.36, 0.18), (0.80, 0.65, 0.40), (0.55, 0.55, 0.58)]
IRIS = [(0.25, 0.45, 0.70), (0.35, 0.25, 0.12), (0.30, 0.50, 0.30), (0.20, 0.15, 0.10)]
FEMININE = re.compile(r"\b(she|her|woman|women|female|girl|lady|mother|actress|queen)\b", re.I)
MASCULINE = re.compile(r"\b(he|his|him|man|men|male|boy|gentleman|father|actor|king)\b", re.I)
OLD = re.compile(r"\b(old|older|elderly|aged|senior|grandmother|grandfather|grandma|grandpa)\b", re.I)
SMILE = re.compile(r"\b(smil\w*|grin\w*|happy|cheerful|warm|joyful|laugh\w*)\b", re.I)
BEARD = re.compile(r"\b(beard\w*|bearded|moustache|mustache)\b", re.I)
GLASSES = re.compile(r"\b(glasses|spectacles)\b", re.I)
HAIR_WORDS = {"blond": (0.85, 0.72, 0.42), "blonde": (0.85, 0.72, 0.42), "brown": (0.35, 0.21, 0.11),
              "black": (0.07, 0.06, 0.05), "red": (0.62, 0.22, 0.10), "ginger": (0.70, 0.33, 0.12),
              "grey": (0.62, 0.62, 0.64), "gray": (0.62, 0.62, 0.64), "white": (0.88, 0.88, 0.86)}  # fmt: skip
COLOURS = {"red": (0.75, 0.15, 0.15), "orange": (0.90, 0.50, 0.15), "yellow": (0.90, 0.80, 0.20),
           "green": (0.20, 0.55, 0.25), "blue": (0.18, 0.35, 0.75), "purple": (0.45, 0.25, 0.65),
           "pink": (0.90, 0.50, 0.65), "teal": (0.15, 0.55, 0.55), "grey": (0.5, 0.5, 0.52),
           "gray": (0.5, 0.5, 0.52), "black": (0.08, 0.08, 0.09), "white": (0.92, 0.92, 0.90)}  # fmt: skip
HAIR_RE = re.compile(r"\b(" + "|".join(HAIR_WORDS) + r")[- ]?(hair|haired)\b", re.I)
BACKGROUND_RE = re.compile(r"\b(" + "|".join(COLOURS) + r")\s+(background|backdrop|wall|studio)\b", re.I)


@dataclass(frozen=True, slots=True)
class Look:
    """What the built-in portrait can take from a prompt, and the sentence that says so."""

    feminine: bool
    old: bool
    smile: bool
    beard: bool
    glasses: bool
    hair: tuple[float, float, float] | None
    background: tuple[float, float, float] | None
    drawn: tuple[str, ...]

    def note(self) -> str:
        """'drew: man, old, smiling, grey hair; the rest of the prompt (clothes, objects, place) is not drawn'."""
        return (f"drew: {', '.join(self.drawn)}; the built-in renderer draws no clothes, objects or places "
                "from the prompt (configure ComfyUI for that)")


def read_look(prompt: str, seed: int) -> Look:
    """The features the built-in portrait follows: gender, age, smile, beard, glasses, hair and background colour."""
    fem_word, masc_word = FEMININE.search(prompt), MASCULINE.search(prompt)
    feminine = bool(fem_word) if (fem_word or masc_word) else seed % 2 == 0
    drawn = ["woman" if feminine else "man"] if (fem_word or masc_word) else []
    hair_m, bg_m = HAIR_RE.search(prompt), BACKGROUND_RE.search(prompt)
    old, smile = bool(OLD.search(prompt)), bool(SMILE.search(prompt))
    beard, glasses = bool(BEARD.search(prompt)) and not feminine, bool(GLASSES.search(prompt))
    for flag, word in ((old, "older"), (smile, "smiling"), (beard, "beard"), (glasses, "glasses")):
        if flag:
            drawn.append(word)
    hair = HAIR_WORDS[hair_m.group(1).lower()] if hair_m else ((0.70, 0.70, 0.72) if old else None)
    if hair_m:
        drawn.append(f"{hair_m.group(1).lower()} hair")
    background = COLOURS[bg_m.group(1).lower()] if bg_m else None
    if bg_m:
        drawn.append(f"{bg_m.group(1).lower()} background")
    return Look(feminine, old, smile, beard, glasses, hair, background, tuple(drawn) or ("a presenter",))


class ImageParams(BaseModel):
    prompt: str = Field(
        min_length=1, max_length=4000, description="what the image shows (e.g. a script's stage description)"
    )
    kind: Literal["portrait", "title_card"] = Field(
        default="portrait", description="a presenter portrait or a title card"
    )
    title: str | None = Field(default=None, max_length=300, description="caption / headline drawn on the image")
    width: int = Field(default=512, ge=64, le=2048)
    height: int = Field(default=512, ge=64, le=2048)


def shade(rgb: tuple[float, float, float], k: float) -> tuple[float, float, float]:
    return (rgb[0] * k, rgb[1] * k, rgb[2] * k)


def mix(a: tuple[float, float, float], b: tuple[float, float, float], t: float) -> tuple[float, float, float]:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def _background(c: Canvas, pal: Palette, rnd: random.Random) -> None:
    c.vertical_gradient(pal.mid, pal.dark)
    c.fill(c.ellipse(0.5, 0.42, 0.42, 0.42, blur=0.3), pal.light, 0.35)
    for _ in range(14):  # bokeh
        r = rnd.uniform(0.02, 0.08)
        c.fill(
            c.ellipse(rnd.uniform(0, 1), rnd.uniform(0, 0.8), r, r, blur=r * 0.3), pal.light, rnd.uniform(0.05, 0.18)
        )


def draw_portrait(
    prompt: str, title: str | None, width: int, height: int, dev: str, on_step: Callable[[int], None] | None = None
) -> Image.Image:
    """A stylised presenter facing the camera, mouth at draw.MOUTH so animate_portrait can move it."""
    seed = seed_of(prompt)
    rnd = random.Random(seed)
    pal = palette(seed)
    look = read_look(prompt, seed)
    if look.background is not None:
        bg = look.background
        pal = Palette(shade(bg, 0.35), bg, mix(bg, (1, 1, 1), 0.55), pal.accent)
    feminine = look.feminine
    skin, hair, iris = rnd.choice(SKIN), rnd.choice(HAIR), rnd.choice(IRIS)
    hair = look.hair or hair
    mx, my = MOUTH
    c = Canvas(width, height, dev, on_step)
    _background(c, pal, rnd)
    # hair behind the head, neck, shoulders
    if feminine:
        c.fill(c.ellipse(0.5, 0.50, 0.25, 0.33), hair)
    else:
        c.fill(c.ellipse(0.5, 0.38, 0.205, 0.21), hair)
    c.fill(c.rounded_rect(0.5, 0.72, 0.07, 0.08, 0.03), shade(skin, 0.82))
    c.fill(c.ellipse(0.5, 1.04, 0.40, 0.27), pal.accent)
    c.fill(c.ellipse(0.5, 0.78, 0.075, 0.045) * c.band(0.76, 2), shade(skin, 0.82))  # collar opening
    c.fill(c.ellipse(0.5, 1.04, 0.40, 0.27) * c.ellipse(0.66, 1.06, 0.3, 0.3, blur=0.1), shade(pal.accent, 0.6), 0.45)
    # ears, head with soft shading
    for ex in (0.5 - 0.182, 0.5 + 0.182):
        c.fill(c.ellipse(ex, 0.47, 0.028, 0.045), shade(skin, 0.9))
    head = c.ellipse(0.5, 0.45, 0.18, 0.235)
    c.fill(head, skin)
    c.fill(head * c.ellipse(0.60, 0.50, 0.16, 0.25, blur=0.08), shade(skin, 0.78), 0.35)
    c.fill(head * c.ellipse(0.42, 0.38, 0.10, 0.10, blur=0.08), mix(skin, (1, 1, 1), 0.5), 0.25)
    # hair on top: a cap cut by a fringe line
    cap = c.ellipse(0.5, 0.37, 0.195, 0.165) * c.band(-1, 0.325 + (0.02 if feminine else 0.0))
    c.fill(cap, hair)
    c.fill(cap * c.ellipse(0.45, 0.27, 0.08, 0.03, blur=0.02), mix(hair, (1, 1, 1), 0.35), 0.35)
    # brows, eyes
    for side in (-1, 1):
        ex = 0.5 + side * 0.072
        c.fill(c.ellipse(ex, 0.392, 0.04, 0.009), shade(hair, 0.9))
        c.fill(c.ellipse(ex, 0.44, 0.036, 0.019), (0.97, 0.97, 0.95))
        c.fill(c.ellipse(ex, 0.44, 0.016, 0.016) * c.ellipse(ex, 0.44, 0.036, 0.019), iris)
        c.fill(c.ellipse(ex, 0.44, 0.008, 0.008), (0.03, 0.03, 0.03))
        c.fill(c.ellipse(ex + 0.006, 0.434, 0.004, 0.004), (1, 1, 1), 0.9)
        c.fill(c.ellipse(ex, 0.427, 0.038, 0.006) * c.band(-1, 0.432), shade(skin, 0.6), 0.5)  # lid line
        c.fill(c.ellipse(0.5 + side * 0.11, 0.53, 0.035, 0.022, blur=0.03), (0.95, 0.45, 0.45), 0.14)  # cheeks
    # nose
    c.fill(c.ellipse(0.512, 0.51, 0.018, 0.04, blur=0.012), shade(skin, 0.7), 0.35)
    c.fill(c.ellipse(0.5, 0.545, 0.022, 0.008, blur=0.004), shade(skin, 0.6), 0.45)
    # mouth: lips around a dark line, centred on MOUTH
    lip = mix(skin, (0.75, 0.25, 0.28), 0.55)
    c.fill(c.ellipse(mx, my - 0.006, 0.050, 0.012), shade(lip, 0.9))
    c.fill(c.ellipse(mx, my + 0.008, 0.045, 0.014), lip)
    c.fill(c.ellipse(mx, my, 0.048, 0.0035), (0.30, 0.08, 0.08))
    if look.smile:  # raised corners and a touch of teeth
        for side in (-1, 1):
            c.fill(c.ellipse(mx + side * 0.047, my - 0.006, 0.010, 0.004), (0.30, 0.08, 0.08))
        c.fill(c.ellipse(mx, my + 0.002, 0.030, 0.003), (0.95, 0.93, 0.90), 0.8)
    if look.old:  # forehead lines and softer cheeks
        for k in range(3):
            c.fill(c.ellipse(0.5, 0.345 + k * 0.012, 0.07 - k * 0.01, 0.0018), shade(skin, 0.7), 0.5)
    if look.beard:
        c.fill(c.ellipse(0.5, 0.62, 0.15, 0.10) * c.band(0.575, 2) * head, shade(hair, 0.95), 0.9)
        c.fill(c.ellipse(mx, my, 0.055, 0.016), shade(hair, 0.9), 0.9)
        c.fill(c.ellipse(mx, my, 0.048, 0.0035), (0.30, 0.08, 0.08))
    if look.glasses:
        for side in (-1, 1):
            ex = 0.5 + side * 0.072
            ring = c.ellipse(ex, 0.44, 0.05, 0.035)
            c.fill(ring - ring * c.ellipse(ex, 0.44, 0.043, 0.029), (0.1, 0.1, 0.12))
        c.fill(c.rounded_rect(0.5, 0.44, 0.022, 0.003, 0.002), (0.1, 0.1, 0.12))
    c.vignette(0.45)
    c.grain(seed, 0.025)
    img = c.to_pil()
    if title:
        _caption(img, title, pal)
    # where the mouth was drawn, for video.animate_portrait (executors/gpu/face.py); save_png keeps it
    s = min(width, height)
    img.info[MOUTH_KEY] = mouth_note(width / 2 + (mx - 0.5) * s, height / 2 + (my - 0.5) * s, LIPS_WIDTH * s, img.size)
    return img


def _caption(img: Image.Image, title: str, pal: Palette) -> None:
    """A lower-third name plate."""
    w, h = img.size
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    f, lines = fit_lines(draw, title, w * 0.8, 2, max(12, h // 16), max(9, h // 30), bold=True)
    asc, desc = f.getmetrics() if hasattr(f, "getmetrics") else (h // 16, 0)
    box_h = (asc + desc) * 1.2 * len(lines) + h * 0.03
    top = h * 0.97 - box_h
    accent = tuple(int(v * 255) for v in pal.accent)
    draw.rectangle((w * 0.06, top, w * 0.94, top + box_h), fill=(10, 10, 14, 170))
    draw.rectangle((w * 0.06, top, w * 0.075, top + box_h), fill=(*accent, 255))
    draw_centered(draw, lines, f, w / 2, top + h * 0.015, (255, 255, 255, 255))
    img.paste(Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB"))


def draw_title_card(
    prompt: str, title: str | None, width: int, height: int, dev: str, on_step: Callable[[int], None] | None = None
) -> Image.Image:
    """Headline over a gradient with soft shapes; the prompt as the subtitle."""
    seed = seed_of(f"{title}|{prompt}")
    rnd = random.Random(seed)
    pal = palette(seed)
    c = Canvas(width, height, dev, on_step)
    c.diagonal_gradient(pal.dark, pal.mid, rnd.uniform(0, 3.14))
    for _ in range(5):
        r = rnd.uniform(0.15, 0.45)
        c.fill(
            c.ellipse(rnd.uniform(-0.1, 1.1), rnd.uniform(-0.1, 1.1), r, r, blur=r * 0.6),
            rnd.choice([pal.light, pal.accent]),
            rnd.uniform(0.12, 0.3),
        )
    ring = c.ellipse(0.82, 0.2, 0.16, 0.16) * (1 - c.ellipse(0.82, 0.2, 0.15, 0.15))
    c.fill(ring, pal.accent, 0.6)
    c.vignette(0.35)
    c.grain(seed, 0.03)
    img = c.to_pil()
    draw = ImageDraw.Draw(img)
    w, h = img.size
    headline = title or _headline(prompt)
    tf, tlines = fit_lines(draw, headline, w * 0.84, 3, max(14, h // 7), max(10, h // 22), bold=True)
    sf, slines = fit_lines(draw, prompt if title else "", w * 0.78, 4, max(10, h // 26), max(8, h // 45))
    t_asc, t_desc = tf.getmetrics() if hasattr(tf, "getmetrics") else (h // 7, 0)
    s_asc, s_desc = sf.getmetrics() if hasattr(sf, "getmetrics") else (h // 26, 0)
    block = (t_asc + t_desc) * 1.1 * len(tlines) + h * 0.06 + (s_asc + s_desc) * 1.3 * len(slines)
    y = (h - block) / 2
    y = draw_centered(draw, tlines, tf, w / 2, y, (255, 255, 255), spacing=1.1, shadow=(0, 0, 0))
    accent = tuple(int(v * 255) for v in pal.accent)
    draw.rectangle((w / 2 - w * 0.08, y + h * 0.02, w / 2 + w * 0.08, y + h * 0.028), fill=accent)
    draw_centered(draw, slines, sf, w / 2, y + h * 0.06, tuple(int(v * 255) for v in pal.light), spacing=1.3)
    return img


def _headline(prompt: str) -> str:
    """The first sentence of the prompt, at most ~8 words."""
    first = re.split(r"(?<=[.!?])\s", prompt.strip(), maxsplit=1)[0]
    words = first.split()
    return " ".join(words[:8]).rstrip(".,;:") + ("…" if len(words) > 8 else "")


#: Shapes each design draws, for progress fractions.
STEPS = {"portrait": 46, "title_card": 6}


def save_png(img: Image.Image, out: Path) -> Path:
    """Write img as a PNG with its text notes (e.g. the portrait's MOUTH_KEY) as PNG text chunks."""
    info = PngInfo()
    for key, value in img.info.items():
        if isinstance(key, str) and isinstance(value, str):
            info.add_text(key, value)
    img.save(out, "PNG", pnginfo=info)
    return out


def render_builtin(p: ImageParams, out: Path, report: Reporter) -> Path:
    draw = draw_portrait if p.kind == "portrait" else draw_title_card

    def step(n: int) -> None:
        report.check()
        report(min(0.9, n / STEPS[p.kind]), f"drawing ({n} shapes)")

    save_png(draw(p.prompt, p.title, p.width, p.height, device.torch_device(), step), out)
    return out


#: What the built-in title card is, said in its output: it cannot draw what a prompt describes.
TITLE_CARD_MADE = ("a title card: the prompt's words over a gradient (the built-in renderer draws no scenes, "
                   "animals or objects; configure ComfyUI for a picture of them)")


async def check_image(ctx: TaskContext, p: ImageParams, out: dict[str, Any]) -> list[Check]:
    """The image's size and that it is not blank, and what was drawn (`content`: title_card, portrait, rendered)."""
    async with scratch(ctx) as tmp:
        path = await fetch(ctx, out["image"], tmp, "image")
        found = await off_loop(measure.image_checks, path, p.width, p.height)
    content = "rendered" if ctx.settings.comfyui_url else p.kind
    return [*found, Check("content", content, "", None, str(out.get("made", "")))]


@service(
    "image.render",
    planes=["gpu"],
    description=(
        "Draws an image from a description: a presenter `portrait` (use it as the face for "
        "video.animate_portrait) or a `title_card` with `title` as the headline. Built in: a designed, "
        "stylised picture; with ComfyUI configured: a diffusion model renders the prompt."
    ),
    params=ImageParams,
    inputs={"prompt": "text", "title": "text"},
    outputs={"image": "image", "made": "text"},
    gpu=True,
    duration_s=1.5,
    memory_mb=600,
    features=(CostFeature(name="pixels", of=["params.width", "params.height"], typical=512 * 512),),
    engine=("comfyui_url",),  # the engine these choose is part of the node cache key
    retry=RetryPolicy(max_attempts=2, backoff_s=1.0),
    timeout_s=900,
    offers=(Offer(
        deliverable="image", does="draw an image (a poster, a title card, a presenter's portrait)", output="image",
        cues=[r"image|picture|poster|drawing|illustration|painting|sketch|logo|icon|wallpaper|banner|thumbnail|"
              r"title card|cover art|draw|paint|illustrate",
              r"dessine|dessin|affiche|zeichne|bild|dib[uú]ja\w*|imagen|disegna|immagine|desenhe|imagem|нарисуй|ارسم|画"]),),
    version="2",  # 2: outputs say what was drawn and carry their checks
    checks=check_image,
    measures=("size", "blank", "content"),
)
async def render(ctx: TaskContext, p: ImageParams) -> dict[str, Any]:
    async with scratch(ctx) as tmp:
        if ctx.settings.comfyui_url:
            out = await comfyui.render_image(ctx, tmp, prompt=p.prompt, title=p.title, kind=p.kind, width=p.width,
                                             height=p.height)
            made = "rendered from the prompt by the ComfyUI workflow"
        else:
            await ctx.progress(0.0, f"drawing a {p.kind} {p.width}x{p.height}")
            out = await in_thread(render_builtin, p, tmp / "image.png", Reporter(ctx))
            made = f"a stylised presenter portrait; {read_look(p.prompt, seed_of(p.prompt)).note()}" \
                if p.kind == "portrait" else TITLE_CARD_MADE
            await ctx.log(made)
        image = await ctx.put_artifact(f"image{out.suffix}", out)
    await ctx.progress(1.0, f"{p.kind} {p.width}x{p.height}")
    return {"image": image, "made": made}
