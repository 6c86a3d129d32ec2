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
