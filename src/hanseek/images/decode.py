"""Turning untrusted bytes into a decoded image, or a clear reason why not.

Pillow is given no file names (bytes only), the pixel count is checked from the header before any
pixel is decoded (decompression bombs), and every way a broken file can fail inside Pillow is mapped
to `ImageRejected` with a message a person can act on.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow format -> (file extension, media type). Anything else is refused.
FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "MPO": ("jpg", "image/jpeg"),  # multi-picture JPEG from phones; the first picture is a plain JPEG
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
    "BMP": ("bmp", "image/bmp"),
    "TIFF": ("tiff", "image/tiff"),
}
# As a person would name them: MPO is a JPEG to its owner.
_ACCEPTED = ", ".join(sorted(set(FORMATS) - {"MPO"}))


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class DecodedImage:
    image: Image.Image  # first frame, EXIF orientation applied, original mode
    sha256: str
    format: str
    ext: str
    mime: str
    width: int
    height: int
    bytes: int


def configure_pillow(max_pixels: int) -> None:
    """Make sure Pillow itself never refuses an image our setting allows.

    `Image.MAX_IMAGE_PIXELS` is process-wide and shared with other features (OCR of page photos),
    so it is only ever raised, never lowered: the explicit check in `decode_image` enforces this
    setting, including the range where Pillow would merely warn."""
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and max_pixels > current:
        Image.MAX_IMAGE_PIXELS = max_pixels


# What Pillow raises on malformed input: the first seven were seen when fuzzing PNG, JPEG, GIF, TIFF
# and WebP files and their EXIF blocks (`struct.error` and `TypeError` come from EXIF/TIFF tag values
# of the wrong type); KeyError is for the EXIF lookups, not seen so far.
_MALFORMED = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, KeyError)


def decode_image(data: bytes, *, max_pixels: int, max_bytes: int | None = None) -> DecodedImage:
    """The first frame of `data`, upright; `max_bytes=None` leaves the size to the request limit."""
    if not data:
        raise ImageRejected("empty", "The file is empty.")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageRejected("too_large", f"The file has {len(data)} bytes; the limit is {max_bytes}.")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or ""
            width, height = probe.size
            if fmt not in FORMATS:
                raise ImageRejected(
                    "unsupported",
                    f"{fmt or 'This'} images are not supported (use {_ACCEPTED}).",
                )
            _check_pixels(width, height, max_pixels)
            probe.verify()  # structural checks (PNG chunk CRCs) that a plain load may skip
        image: Image.Image = Image.open(io.BytesIO(data))
        image.load()  # decodes the first frame only; truncated data raises here
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", f"Refused as a possible decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            "not_an_image", f"The file is not an image Pillow can read (use {_ACCEPTED})."
        ) from exc
    except _MALFORMED as exc:
        raise ImageRejected("corrupt", f"The image is corrupt or truncated ({exc}).") from exc
    image = _upright(image)
    ext, mime = FORMATS[fmt]
    return DecodedImage(
        image=image,
        sha256=hashlib.sha256(data).hexdigest(),
        format="JPEG" if fmt == "MPO" else fmt,
        ext=ext,
        mime=mime,
        width=image.width,
        height=image.height,
        bytes=len(data),
    )


def _upright(image: Image.Image) -> Image.Image:
    """`image` turned as its EXIF orientation says; as stored when the EXIF block is unreadable.

    The pixels have decoded by then, and a phone photo is worth more unrotated than refused for
    its metadata."""
    try:
        return ImageOps.exif_transpose(image) or image
    except _MALFORMED:
        return image


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt", f"The image header gives an invalid size {width}×{height}.")
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"The image is {width}×{height} = {width * height} pixels; the limit is {max_pixels} "
            "(refused as a possible decompression bomb).",
        )
