"""Media files are named by validated hashes only, written atomically, thumbnails bounded."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from PIL import Image

from hanseek.files import shared_mode
from hanseek.images.storage import MediaStore


def test_paths_come_only_from_a_valid_hash(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media")
    sha = hashlib.sha256(b"x").hexdigest()
    assert store.original_path(sha, "png") == tmp_path / "media" / "images" / sha[:2] / f"{sha}.png"
    for bad_sha, ext in (
        ("../../etc/passwd", "png"),
        (sha.upper(), "png"),
        (sha[:-1], "png"),
        (sha, "p/g"),
        (sha, ""),
    ):
        with pytest.raises(ValueError):
            store.original_path(bad_sha, ext)


def test_save_is_idempotent_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = MediaStore(tmp_path, thumbnail_px=64)
    data = b"\x89PNG fake bytes"
    sha = hashlib.sha256(data).hexdigest()
    p1 = store.save_original(sha, "png", data)
    p2 = store.save_original(sha, "png", data)
    assert p1 == p2 and p1.read_bytes() == data
    thumb = store.save_thumbnail(sha, Image.new("RGBA", (300, 100), (0, 0, 0, 0)))
    with Image.open(thumb) as t:
        assert t.format == "WEBP" and t.size == (64, 21)
    assert not [p for p in tmp_path.rglob(".tmp-*")]
    # Written through a private temporary, stored with the mode an ordinary write gives (not 0600).
    assert {stat.S_IMODE(p.stat().st_mode) for p in (p1, thumb)} == {shared_mode()}
    store.delete(sha, "png")
    assert not p1.exists() and not thumb.exists()
    store.delete(sha, "png")  # deleting twice is fine
