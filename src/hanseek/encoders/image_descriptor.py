"""A hand-made global image descriptor: the dependency-free fallback image encoder.

Three parts, each L2-normalised and then weighted so no part dominates:
- colour: HSV histograms (8 hue × 3 saturation × 3 value bins) over a 1×1 and a 2×2 grid;
- shape: gradient-orientation histograms (9 unsigned orientations, magnitude-weighted) over 1×1, 2×2
  and 4×4 grids of the grey image;
- layout: an 8×8 grey thumbnail with its mean removed.
Histograms use the Hellinger map (square roots), which makes cosine similarity behave like the
Bhattacharyya coefficient and reduces the weight of large uniform regions.

It finds near-duplicates (resized, recompressed, mildly cropped or colour-shifted copies); it knows
nothing of meaning: two different cats are not closer than a cat and a carpet of the same colours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from hanseek.encoders.image_base import FloatArray, l2_normalize, to_rgb

SIZE = 128
HUE_BINS, SAT_BINS, VAL_BINS = 8, 3, 3
ORIENT_BINS = 9
WEIGHTS = {"colour": 1.0, "shape": 1.0, "layout": 0.6}


def _grid_slices(n: int, size: int) -> list[tuple[slice, slice]]:
    edges = np.linspace(0, size, n + 1).astype(int)
    return [
        (slice(edges[r], edges[r + 1]), slice(edges[c], edges[c + 1])) for r in range(n) for c in range(n)
    ]


def _colour(hsv: NDArray[np.uint8]) -> NDArray[np.float64]:
    h = (hsv[..., 0].astype(np.int64) * HUE_BINS) // 256
    s = (hsv[..., 1].astype(np.int64) * SAT_BINS) // 256
    v = (hsv[..., 2].astype(np.int64) * VAL_BINS) // 256
    code = (h * SAT_BINS + s) * VAL_BINS + v
    n_bins = HUE_BINS * SAT_BINS * VAL_BINS
    parts = []
    for grid in (1, 2):
        for rows, cols in _grid_slices(grid, SIZE):
            hist = np.bincount(code[rows, cols].ravel(), minlength=n_bins).astype(np.float64)
            parts.append(np.sqrt(hist / max(hist.sum(), 1.0)))
    return np.concatenate(parts)


def _shape(grey: NDArray[np.float64]) -> NDArray[np.float64]:
    gy, gx = np.gradient(grey)
    mag = np.hypot(gx, gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned: a dark-to-light edge equals light-to-dark
    bins = np.minimum((ang / np.pi * ORIENT_BINS).astype(np.int64), ORIENT_BINS - 1)
    parts = []
    for grid in (1, 2, 4):
        for rows, cols in _grid_slices(grid, SIZE):
            hist = np.bincount(
                bins[rows, cols].ravel(), weights=mag[rows, cols].ravel(), minlength=ORIENT_BINS
            )
            parts.append(np.sqrt(hist / max(hist.sum(), 1e-9)))
    return np.concatenate(parts)


def _layout(image: Image.Image) -> NDArray[np.float64]:
    small = np.asarray(image.convert("L").resize((8, 8), Image.Resampling.BOX), dtype=np.float64)
    return (small - small.mean()).ravel()


def _unit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    n = float(np.linalg.norm(x))
    return x / n if n > 1e-12 else x


def describe(image: Image.Image) -> NDArray[np.float64]:
    rgb = to_rgb(image).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    hsv = np.asarray(rgb.convert("HSV"), dtype=np.uint8)
    grey = np.asarray(rgb.convert("L"), dtype=np.float64) / 255.0
    return np.concatenate(
        [
            WEIGHTS["colour"] * _unit(_colour(hsv)),
            WEIGHTS["shape"] * _unit(_shape(grey)),
            WEIGHTS["layout"] * _unit(_layout(rgb)),
        ]
    )


class DescriptorEncoder:
    name = "descriptor-v1"
    dim = HUE_BINS * SAT_BINS * VAL_BINS * 5 + ORIENT_BINS * 21 + 64
    supports_text = False

    def encode_images(self, images: Sequence[Image.Image]) -> FloatArray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.stack([describe(im) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> FloatArray:
        raise NotImplementedError("the descriptor encoder has no text side; texts match captions/labels")
