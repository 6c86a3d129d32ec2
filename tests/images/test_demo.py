"""The bundled demo images load once, are searchable, and stay small."""

from __future__ import annotations

import csv
from typing import Any

from hanseek.images import demo
from hanseek.images.repo import ImageFilters
from hanseek.images.service import ImageService


def test_demo_files_are_small_and_attributed() -> None:
    files = sorted(p for p in demo.DEMO_DIR.iterdir() if p.suffix == ".jpg")
    assert len(files) == 10 and sum(p.stat().st_size for p in files) < 1_000_000
    with (demo.DEMO_DIR / "captions.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["file"] for r in rows} == {p.name for p in files}
    assert all(r["license"] and r["origin"] and r["caption_ko"] for r in rows)
    attribution = (demo.DEMO_DIR.parent / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "## Image search demo" in attribution


def test_load_demo_is_idempotent_and_searchable(
    db: Any, db_settings: Any, text_encoder: Any, image_service: ImageService
) -> None:
    first = demo.load_demo(db, db_settings, text_encoder)
    second = demo.load_demo(db, db_settings, text_encoder)
    assert first["images"] + first["already_present"] == 10
    assert second == {"images": 0, "already_present": 10}
    out = image_service.search_text("고양이", k=3, filters=ImageFilters(tags=(demo.DEMO_TAG,)))
    assert "chelsea" in (out.hits[0].image["source_name"] or "")


def test_a_deleted_demo_photo_stays_deleted(scratch_url: str, tmp_path: Any, text_encoder: Any) -> None:
    """`serve` loads the demo when it is missing: a demo photo the user deleted came back, under a
    new id, on the next start. A finished load is recorded; one cut short is still completed."""
    from hanseek.config import Settings
    from hanseek.store.db import Database

    settings = Settings(data_dir=tmp_path, database_url=scratch_url)
    settings.ensure_dirs()
    database = Database.open(settings)
    try:
        database.migrate()
        first = demo.load_demo(database, settings, text_encoder)
        assert first["images"] == 10
        svc = ImageService.build(database, settings, text_encoder=lambda: text_encoder)
        try:
            rows, _ = svc.list(limit=10, tags=[demo.DEMO_TAG])
            svc.delete(rows[0]["id"])
            again = demo.load_demo(database, settings, text_encoder)
            assert again == {"images": 0, "already_present": 9}
            assert svc.list(limit=10, tags=[demo.DEMO_TAG])[1] == 9
            # A load killed before its record: the next one completes it.
            with database.connection() as conn:
                conn.execute("DELETE FROM demo_loads")
            completed = demo.load_demo(database, settings, text_encoder)
            assert completed["images"] == 1 and svc.list(limit=10, tags=[demo.DEMO_TAG])[1] == 10
        finally:
            svc.close()
    finally:
        database.close()
