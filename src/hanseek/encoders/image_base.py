"""The `ImageEncoder` protocol and helpers shared by the image encoders.

An image encoder maps decoded RGB images (and, for CLIP-style models, texts) into one vector space.
Vectors are float32 and L2-normalised, so cosine similarity is a dot product and pgvector's `<=>`
cosine distance is `1 - score`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from PIL import Image

FloatArray = NDArray[np.float32]


@runtime_checkable
class ImageEncoder(Protocol):
    """Encodes images (and optionally texts) into one L2-normalised vector space."""

    name: str
    dim: int
    supports_text: bool

    def encode_images(self, images: Sequence[Image.Image]) -> FloatArray:
        """float32 [n, dim], L2-normalised; `images` are RGB (see `to_rgb`)."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> FloatArray:
        """float32 [n, dim] in the image space; raises NotImplementedError when not `supports_text`."""
        ...


@runtime_checkable
class ImageLabeler(Protocol):
    """An encoder that can also name what it sees (e.g. ImageNet classes), for text search without
    captions. Labels are English class names with probabilities."""

    def predict_labels(
        self, images: Sequence[Image.Image], top_k: int, min_prob: float
    ) -> list[list[tuple[str, float]]]: ...

    def encode_and_label(
        self, images: Sequence[Image.Image], top_k: int, min_prob: float
    ) -> tuple[FloatArray, list[list[tuple[str, float]]]]:
        """`encode_images` and `predict_labels` from one forward pass (ingest does both)."""
        ...


def l2_normalize(x: NDArray[np.floating]) -> FloatArray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # An all-zero row (blank image in a histogram descriptor) stays zero instead of becoming NaN.
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """An 8-bit RGB copy: transparency composited on `background`, 16-bit and float greyscale rescaled
    (Pillow's plain convert("L") clips 16-bit values to 255, which turns most such images white)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(np.nan_to_num(scaled).astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")
