"""Page photos to text with Tesseract (Debian tesseract-ocr + tesseract-ocr-kor, via pytesseract)."""

from __future__ import annotations

import shutil
import threading
from typing import Any

from PIL import Image, ImageOps

from hanseek.images.decode import ImageRejected, decode_image

MAX_PIXELS = 40_000_000
# Tesseract needs glyphs of ~20+ px; phone photos of a page have that, small crops may not.
MIN_LONG_SIDE = 800
# --psm 4: one column of text of varying sizes (a page of notes); the default automatic layout
# analysis splits slightly rotated photos into fragments. The Korean model alone also reads the
# Latin letters of a Korean page better than kor+eng, which turns some Hangul words into Latin.
TESSERACT_CONFIG = "--psm 4"


class OcrUnavailable(RuntimeError):
    """Tesseract or its Korean data is not installed."""


class InvalidImage(ValueError):
    pass


class OcrEngine:
    def __init__(
        self,
        *,
        languages: str = "kor",
        timeout_s: float = 60.0,
        max_pixels: int = MAX_PIXELS,
        tesseract_cmd: str = "tesseract",
    ) -> None:
        self.languages = languages
        self.tesseract_cmd = tesseract_cmd
        self.timeout_s = timeout_s
        self.max_pixels = max_pixels
        self._checked: str | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise OcrUnavailable with what to install when Tesseract or a language is missing."""
        with self._lock:
            if self._checked == "ok":
                return
            if shutil.which(self.tesseract_cmd) is None:
                raise OcrUnavailable(
                    "OCR is unavailable: the `tesseract` program is not installed (Debian: apt-get "
                    "install tesseract-ocr tesseract-ocr-kor, or `bash scripts/system-deps.sh ocr`)"
                )
            have = set(self._tesseract().get_languages(config=""))
            missing = [lang for lang in self.languages.split("+") if lang not in have]
            if missing:
                raise OcrUnavailable(
                    f"OCR is unavailable: Tesseract has no language data for {', '.join(missing)} "
                    f"(Debian: apt-get install {' '.join('tesseract-ocr-' + m for m in missing)})"
                )
            self._checked = "ok"

    def _tesseract(self) -> Any:
        import pytesseract

        # pytesseract reads the program path from a module attribute; set it to ours on every use
        # (all engines in a process normally agree on it).
        pytesseract.pytesseract.tesseract_cmd = self.tesseract_cmd
        return pytesseract

    def load(self, data: bytes) -> Image.Image:
        """The photo decoded and upright, by the same checks as the image search's uploads."""
        try:
            return decode_image(data, max_pixels=self.max_pixels).image
        except ImageRejected as exc:
            raise InvalidImage(exc.message) from exc

    def prepare(self, image: Image.Image) -> Image.Image:
        img = ImageOps.autocontrast(image.convert("L"))
        long_side = max(img.size)
        if 0 < long_side < MIN_LONG_SIDE:
            scale = MIN_LONG_SIDE / long_side
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
        return img

    def image_to_text(self, data: bytes) -> str:
        """The text of a page photo (PNG, JPEG, ...). Raises InvalidImage or OcrUnavailable."""
        self.check()
        pytesseract = self._tesseract()
        image = self.prepare(self.load(data))
        try:
            text = pytesseract.image_to_string(
                image, lang=self.languages, config=TESSERACT_CONFIG, timeout=self.timeout_s
            )
        except RuntimeError as exc:  # pytesseract raises RuntimeError on its timeout
            raise InvalidImage(f"OCR gave up after {self.timeout_s:.0f} s on this image") from exc
        except pytesseract.TesseractError as exc:
            raise InvalidImage(f"Tesseract could not read this image: {exc.message}") from exc
        return clean_ocr_text(text)


def clean_ocr_text(text: str) -> str:
    """Drop form feeds and empty lines Tesseract adds; keep paragraph breaks."""
    lines = [line.strip() for line in text.replace("\f", "\n").splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()
