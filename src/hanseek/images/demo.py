"""Bundled demo images: ten public-domain / CC0 photos with Korean and English captions."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from hanseek.images import repo

if TYPE_CHECKING:
    from hanseek.config import Settings
    from hanseek.encoders.base import TextEncoder
    from hanseek.store.db import Database

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo" / "images"
DEMO_TAG = "demo"
FEATURE = "images"  # its row in demo_loads


def demo_uploads() -> list[tuple[str, bytes, str, list[str]]]:
    """(file name, bytes, caption, tags) for each bundled photo, in captions.csv order."""
    out = []
    with (DEMO_DIR / "captions.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            # Both languages in one caption, so either finds it; tags are the data set's categories.
            caption = f"{row['caption_ko']} ({row['caption_en']})"
            tags = [DEMO_TAG, *(t.strip() for t in row["tags"].split(";") if t.strip())]
            out.append((row["file"], (DEMO_DIR / row["file"]).read_bytes(), caption, tags))
    return out


def load_demo(db: Database, settings: Settings, encoder: TextEncoder) -> dict[str, int]:
    """Store the demo photos once. A load that finished is recorded (`demo_loads`), so a demo photo
    the user deleted stays deleted; one that did not finish (killed) is completed: photos already
    stored are found by hash and skipped."""
    from hanseek.images.service import ImageService, Upload

    uploads = demo_uploads()
    with db.connection() as conn:
        present = repo.existing_by_sha(conn, [hashlib.sha256(data).hexdigest() for _, data, _, _ in uploads])
        done = conn.execute("SELECT 1 FROM demo_loads WHERE feature = %s", (FEATURE,)).fetchone()
    if done is not None or len(present) == len(uploads):
        _mark_loaded(db)  # all there from before the record existed: recorded now
        return {"images": 0, "already_present": len(present)}
    svc = ImageService.build(db, settings, text_encoder=lambda: encoder)
    try:
        results = svc.add([Upload(data, name, caption, tags) for name, data, caption, tags in uploads])
    finally:
        svc.close()
    rejected = sum(r.status == "rejected" for r in results)
    if not rejected:
        _mark_loaded(db)
    return {
        "images": sum(r.status == "added" for r in results),
        "already_present": sum(r.status == "duplicate" for r in results),
        "rejected": rejected,
    }


def _mark_loaded(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("INSERT INTO demo_loads (feature) VALUES (%s) ON CONFLICT DO NOTHING", (FEATURE,))
