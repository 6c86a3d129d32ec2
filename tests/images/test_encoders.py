"""Image encoders: shapes, normalisation, real pretrained behaviour and near-duplicate robustness."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from hanseek.encoders.image_base import ImageEncoder, ImageLabeler
from hanseek.encoders.image_descriptor import DescriptorEncoder
from hanseek.encoders.image_registry import load_image_encoder
from hanseek.images.transforms import STANDARD


def _check_vectors(v: np.ndarray, n: int, dim: int) -> None:
    assert v.shape == (n, dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_auto_picks_the_pretrained_cnn() -> None:
    enc = load_image_encoder("auto")
    assert enc.name == "efficientnet-lite0" and enc.dim == 1280
    assert isinstance(enc, ImageEncoder) and isinstance(enc, ImageLabeler)
    assert not enc.supports_text
    with pytest.raises(NotImplementedError):
        enc.encode_texts(["a cat"])


def test_unknown_model_name_is_a_clear_error() -> None:
    from hanseek.encoders.base import EncoderError

    with pytest.raises(EncoderError, match="unknown image model"):
        load_image_encoder("resnet-9000")


@pytest.mark.parametrize("which", ["cnn", "descriptor"])
def test_edited_copies_find_their_original_at_rank_1(
    which: str, cnn_encoder: Any, sample_images: dict[str, Image.Image]
) -> None:
    enc = cnn_encoder if which == "cnn" else DescriptorEncoder()
    names = sorted(sample_images)
    originals = [sample_images[n] for n in names]
    index = enc.encode_images(originals)
    _check_vectors(index, len(names), enc.dim)
    edits = ["resize_50", "crop_centre_80", "crop_corner_70", "jpeg_q30", "colour_jitter", "combined"]
    queries = [STANDARD[e](im) for e in edits for im in originals]
    q = enc.encode_images(queries)
    scores = q @ index.T
    expected = np.tile(np.arange(len(names)), len(edits))
    assert (scores.argmax(axis=1) == expected).all(), scores.round(3)
    # and by a margin, not by a hair
    own = scores[np.arange(len(queries)), expected]
    other = np.where(np.eye(len(names), dtype=bool)[expected], -1.0, scores).max(axis=1)
    assert (own - other).min() > 0.05


def test_cnn_separates_unrelated_photos(cnn_encoder: Any, sample_images: dict[str, Image.Image]) -> None:
    v = cnn_encoder.encode_images(list(sample_images.values()))
    sims = v @ v.T
    off = sims[~np.eye(len(v), dtype=bool)]
    assert off.max() < 0.5  # centring removes the component all photos share


def test_cnn_names_what_it_sees(cnn_encoder: Any, sample_images: dict[str, Image.Image]) -> None:
    """Real ImageNet weights: Grace Hopper's portrait is classified as a military uniform."""
    labels = cnn_encoder.predict_labels(
        [sample_images["hopper"], sample_images["flower"]], top_k=5, min_prob=0.01
    )
    hopper = [name for name, _ in labels[0]]
    assert "military uniform" in hopper, labels[0]
    assert all(0.01 <= p <= 1 for _, p in labels[0])


def test_encoders_accept_any_mode_and_tiny_images(cnn_encoder: Any) -> None:
    images = [
        Image.new("L", (3, 3), 128),
        Image.new("RGBA", (50, 10), (0, 0, 255, 128)),
        Image.new("P", (20, 20)),
        Image.new("I;16", (16, 16)),
    ]
    for enc in (cnn_encoder, DescriptorEncoder()):
        v = enc.encode_images(images)
        assert v.shape == (4, enc.dim) and np.isfinite(v).all()
        assert enc.encode_images([]).shape == (0, enc.dim)
