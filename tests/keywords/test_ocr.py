"""Page photos are decoded by the image search's checks before Tesseract sees them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from hanseek.keywords.ocr import InvalidImage, OcrEngine
from tests.images.conftest import unreadable_exif

DATA = Path(__file__).parent / "data"


def test_a_photo_with_an_unreadable_exif_block_is_still_read() -> None:
    # Pillow fails while applying that EXIF block's orientation; the page, stored upright, is read as
    # stored.
    buf = io.BytesIO()
    with Image.open(DATA / "page_ko.png") as page:
        page.convert("RGB").save(buf, format="JPEG", quality=95, exif=unreadable_exif())
    text = OcrEngine().image_to_text(buf.getvalue())
    assert "구석기" in text and "고인돌" in text


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"%PDF-1.4\n", "not an image"),
        (b"P6\n8 8\n255\n" + bytes(192), "PPM images are not supported"),
    ],
    ids=["empty", "pdf", "ppm"],
)
def test_unusable_files_are_refused_in_words(data: bytes, words: str) -> None:
    with pytest.raises(InvalidImage, match=words):
        OcrEngine().load(data)


def test_the_pixel_limit_is_checked_from_the_header() -> None:
    buf = io.BytesIO()
    Image.new("L", (3000, 3000), 255).save(buf, format="PNG")
    with pytest.raises(InvalidImage, match="pixels"):
        OcrEngine(max_pixels=1_000_000).load(buf.getvalue())
