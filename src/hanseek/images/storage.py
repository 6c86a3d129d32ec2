"""Image files on disk, named by content hash under `<media_dir>/images` and `<media_dir>/thumbs`.

Paths are built only from a validated sha256 and an extension from a fixed table, so no request can
name a path (no client file name is ever used), and identical uploads share one file.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from hanseek.encoders.image_base import to_rgb
from hanseek.files import atomic_file

_SHA = re.compile(r"^[0-9a-f]{64}$")
_EXT = re.compile(r"^[a-z0-9]{1,5}$")
THUMB_EXT, THUMB_MIME = "webp", "image/webp"
_ORIGINAL_NAME = re.compile(r"^([0-9a-f]{64})\.[a-z0-9]{1,5}$")
_THUMB_NAME = re.compile(rf"^([0-9a-f]{{64}})\.{THUMB_EXT}$")


class MediaStore:
    def __init__(self, media_dir: Path, thumbnail_px: int = 256) -> None:
        self.root = Path(media_dir)
        self.thumbnail_px = thumbnail_px

    def original_path(self, sha256: str, ext: str) -> Path:
        _check(sha256, ext)
        return self.root / "images" / sha256[:2] / f"{sha256}.{ext}"

    def thumbnail_path(self, sha256: str) -> Path:
        _check(sha256, THUMB_EXT)
        return self.root / "thumbs" / sha256[:2] / f"{sha256}.{THUMB_EXT}"

    def save_original(self, sha256: str, ext: str, data: bytes) -> Path:
        path = self.original_path(sha256, ext)
        if not path.exists():
            _atomic_write(path, data)
        return path

    def save_thumbnail(self, sha256: str, image: Image.Image) -> Path:
        path = self.thumbnail_path(sha256)
        if not path.exists():
            thumb = to_rgb(image).copy()
            thumb.thumbnail((self.thumbnail_px, self.thumbnail_px), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            thumb.save(buf, format="WEBP", quality=80, method=4)
            _atomic_write(path, buf.getvalue())
        return path

    def _shards(self) -> Iterator[tuple[str, Path]]:
        """("images" or "thumbs", folder) for each hash-prefix folder under the root."""
        for sub in ("images", "thumbs"):
            top = self.root / sub
            if top.is_dir():
                yield from ((sub, shard) for shard in sorted(top.iterdir()) if shard.is_dir())

    def stored_files(self) -> Iterator[tuple[str, Path]]:
        """(sha256, path) of every original and thumbnail under the root, named as this store names
        them. Anything else (a `.tmp-` file being written, a file someone put there) is not listed."""
        patterns = {"images": _ORIGINAL_NAME, "thumbs": _THUMB_NAME}
        for sub, shard in self._shards():
            for path in sorted(shard.iterdir()):
                m = patterns[sub].match(path.name)
                if m and m.group(1)[:2] == shard.name and path.is_file():
                    yield m.group(1), path

    def temporaries(self) -> Iterator[Path]:
        """The `.tmp-` files of writes in the shard folders (`_atomic_write`): a finished write
        renamed its own, so an old one is what a process killed mid-write left."""
        for _, shard in self._shards():
            if not shard.is_symlink():
                yield from (p for p in sorted(shard.glob(".tmp-*")) if p.is_file() and not p.is_symlink())

    def delete(self, sha256: str, ext: str) -> None:
        for path in (self.original_path(sha256, ext), self.thumbnail_path(sha256)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _check(sha256: str, ext: str) -> None:
    if not _SHA.match(sha256) or not _EXT.match(ext):
        raise ValueError("invalid media name")


def _atomic_write(path: Path, data: bytes) -> None:
    # Readers never see a half-written file, and two concurrent writers of the same hash both end
    # with the same complete file. ".tmp-": the name a backup skips (store.backup._tar_media).
    with atomic_file(path, binary=True, prefix=".tmp-", suffix="") as fh:
        fh.write(data)
