"""Edited copies of an image, for measuring near-duplicate robustness (evaluation and tests).

Each transform is deterministic (fixed crop boxes, qualities and factors) so reports are reproducible.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageEnhance, ImageOps

from hanseek.encoders.image_base import to_rgb

Transform = Callable[[Image.Image], Image.Image]


def resize(factor: float) -> Transform:
    def f(im: Image.Image) -> Image.Image:
        w, h = im.size
        return im.resize((max(8, round(w * factor)), max(8, round(h * factor))), Image.Resampling.LANCZOS)

    return f


def crop(fraction: float, anchor: tuple[float, float] = (0.5, 0.5)) -> Transform:
    """Keep `fraction` of each side, placed at `anchor` (0..1 of the free margin)."""

    def f(im: Image.Image) -> Image.Image:
        w, h = im.size
        cw, ch = round(w * fraction), round(h * fraction)
        left, top = round((w - cw) * anchor[0]), round((h - ch) * anchor[1])
        return im.crop((left, top, left + cw, top + ch))

    return f


def jpeg(quality: int) -> Transform:
    def f(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        to_rgb(im).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        out = Image.open(buf)
        out.load()
        return out

    return f


def jitter(brightness: float = 1.25, contrast: float = 0.8, saturation: float = 1.3) -> Transform:
    def f(im: Image.Image) -> Image.Image:
        out = ImageEnhance.Brightness(to_rgb(im)).enhance(brightness)
        out = ImageEnhance.Contrast(out).enhance(contrast)
        return ImageEnhance.Color(out).enhance(saturation)

    return f


def grey(im: Image.Image) -> Image.Image:
    return ImageOps.grayscale(to_rgb(im)).convert("RGB")


def mirror(im: Image.Image) -> Image.Image:
    return ImageOps.mirror(to_rgb(im))


def chain(*steps: Transform) -> Transform:
    def f(im: Image.Image) -> Image.Image:
        for step in steps:
            im = step(im)
        return im

    return f


# The copies a person makes of an image: shrink it, screenshot part of it, re-save it, filter it.
STANDARD: dict[str, Transform] = {
    "resize_50": resize(0.5),
    "thumbnail_25": resize(0.25),
    "crop_centre_80": crop(0.8),
    "crop_corner_70": crop(0.7, (0.0, 1.0)),
    "jpeg_q30": jpeg(30),
    "colour_jitter": jitter(),
    "greyscale": grey,
    "mirror": mirror,
    "combined": chain(crop(0.85, (0.3, 0.6)), resize(0.6), jitter(1.1, 0.9, 1.15), jpeg(50)),
}
