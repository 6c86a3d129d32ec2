"""Decoding untrusted bytes: good images pass, everything else is refused with a clear reason."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from hanseek.encoders.image_base import to_rgb
from hanseek.images.decode import ImageRejected, configure_pillow, decode_image
from tests.images.conftest import encode_jpeg, encode_png, unreadable_exif

LIMITS = {"max_pixels": 4_000_000, "max_bytes": 4 * 1024 * 1024}


def test_decodes_jpeg_and_png_with_metadata(sample_images: dict[str, Image.Image]) -> None:
    im = sample_images["china"]
    for data, fmt, ext in ((encode_jpeg(im), "JPEG", "jpg"), (encode_png(im), "PNG", "png")):
        d = decode_image(data, **LIMITS)
        assert (d.format, d.ext, d.width, d.height) == (fmt, ext, 640, 427)
        assert d.sha256 == hashlib.sha256(data).hexdigest()
        assert d.bytes == len(data)


def test_truncated_jpeg_is_rejected(sample_images: dict[str, Image.Image]) -> None:
    data = encode_jpeg(sample_images["flower"])
    with pytest.raises(ImageRejected) as exc:
        decode_image(data[: len(data) // 2], **LIMITS)
    assert exc.value.reason == "corrupt"
    assert "truncated" in exc.value.message


def test_truncated_png_is_rejected(sample_images: dict[str, Image.Image]) -> None:
    data = encode_png(sample_images["flower"])
    with pytest.raises(ImageRejected) as exc:
        decode_image(data[: len(data) - 5000], **LIMITS)
    assert exc.value.reason == "corrupt"


@pytest.mark.parametrize(
    "data",
    [b"hello, this is a text file\n" * 20, bytes(range(256)) * 40, b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"],
    ids=["text", "random", "pdf"],
)
def test_non_images_are_rejected(data: bytes) -> None:
    with pytest.raises(ImageRejected) as exc:
        decode_image(data, **LIMITS)
    assert exc.value.reason == "not_an_image"


def test_empty_and_oversized_files() -> None:
    with pytest.raises(ImageRejected) as exc:
        decode_image(b"", **LIMITS)
    assert exc.value.reason == "empty"
    with pytest.raises(ImageRejected) as exc:
        decode_image(b"\x89PNG" + b"0" * 100, max_pixels=100, max_bytes=50)
    assert exc.value.reason == "too_large"


def test_unsupported_format_is_rejected() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PPM")
    with pytest.raises(ImageRejected) as exc:
        decode_image(buf.getvalue(), **LIMITS)
    assert exc.value.reason == "unsupported"
    assert "PPM" in exc.value.message


def test_decompression_bomb_is_rejected_from_the_header() -> None:
    # 3000×3000 of one colour compresses to a few kB but decodes to 27 MB.
    bomb = encode_png(Image.new("RGB", (3000, 3000), "white"))
    assert len(bomb) < 100_000
    with pytest.raises(ImageRejected) as exc:
        decode_image(bomb, max_pixels=1_000_000, max_bytes=LIMITS["max_bytes"])
    assert exc.value.reason == "too_many_pixels"
    assert "decompression bomb" in exc.value.message


def test_pillow_bomb_error_is_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond twice Pillow's own limit, Image.open raises DecompressionBombError itself."""
    bomb = encode_png(Image.new("L", (2000, 2000), 0))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    with pytest.raises(ImageRejected) as exc:
        decode_image(bomb, max_pixels=10**9, max_bytes=LIMITS["max_bytes"])
    assert exc.value.reason == "too_many_pixels"


def test_configure_pillow_only_raises_the_process_wide_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)
    configure_pillow(1_000_000)  # stricter: enforced by decode_image, not by lowering Pillow's limit
    assert Image.MAX_IMAGE_PIXELS == 89_478_485
    configure_pillow(200_000_000)
    assert Image.MAX_IMAGE_PIXELS == 200_000_000


def test_exif_orientation_is_applied() -> None:
    im = Image.new("RGB", (40, 20), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    im.save(buf, format="JPEG", exif=exif)
    d = decode_image(buf.getvalue(), **LIMITS)
    assert (d.width, d.height) == (20, 40)


def test_sixteen_bit_grey_keeps_its_contrast() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (16, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")  # uint16 -> mode I;16
    d = decode_image(buf.getvalue(), **LIMITS)
    rgb = np.asarray(to_rgb(d.image))
    assert rgb.shape == (16, 64, 3)
    assert rgb[:, 0].max() < 10 and rgb[:, -1].min() > 245  # not clipped to white


def test_transparency_is_composited_on_white() -> None:
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    d = decode_image(encode_png(im), **LIMITS)
    assert to_rgb(d.image).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_unreadable_exif_leaves_the_image_as_stored(fmt: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), "blue").save(buf, format=fmt, exif=unreadable_exif())
    d = decode_image(buf.getvalue(), **LIMITS)
    assert (d.format, d.width, d.height) == (fmt, 40, 20)


def test_refusals_name_the_accepted_formats_as_people_know_them() -> None:
    with pytest.raises(ImageRejected) as exc:
        decode_image(b"%PDF-1.4\n", **LIMITS)
    assert exc.value.message.endswith("(use BMP, GIF, JPEG, PNG, TIFF, WEBP).")  # no MPO
