"""ImageService on the real embedded PostgreSQL with the real CNN and e5 text encoder."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hanseek.images import repo
from hanseek.images.repo import ImageFilters
from hanseek.images.service import ImageNotFound, ImageService, ImageServiceError, Upload, normalize_tags
from hanseek.images.transforms import STANDARD
from tests.images.conftest import encode_jpeg, encode_png, unique_png


@dataclass(frozen=True)
class Stored:
    ids: dict[str, int]
    window: ImageFilters  # exactly the images this fixture added (by insertion time)

    def __getitem__(self, name: str) -> int:
        return self.ids[name]


@pytest.fixture(scope="module")
def stored(image_service: ImageService, sample_images: dict[str, Image.Image]) -> Stored:
    """The three sample photos, stored once for the module, with captions on two of them."""
    captions = {"china": "기와 지붕이 있는 중국의 오래된 절", "hopper": "a portrait of a navy officer"}
    names = sorted(sample_images)
    with image_service.db.connection() as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    start = row[0]  # the database's clock, which stamps created_at
    res = image_service.add(
        [Upload(unique_png(sample_images[n]), f"{n}.png", captions.get(n), [n]) for n in names]
    )
    assert [r.status for r in res] == ["added"] * 3, [r.message for r in res]
    ids = {n: r.id for n, r in zip(names, res, strict=True)}
    rows = [image_service.get(i) for i in ids.values()]  # type: ignore[arg-type]
    end = max(r["created_at"] for r in rows) + timedelta(microseconds=1)
    # No other test adds images between `start` and the insert, so the window holds exactly these.
    window = ImageFilters(created_from=start, created_to=end)
    assert len(image_service.similar(ids["china"], k=10, filters=window).hits) == 2  # type: ignore[arg-type]
    return Stored(ids, window)  # type: ignore[arg-type]


def test_batch_with_bad_files_stores_the_good_ones(
    image_service: ImageService, sample_images: dict[str, Image.Image], tag: str
) -> None:
    good = unique_png(sample_images["flower"])
    truncated = encode_jpeg(sample_images["china"])[:5000]
    bomb = encode_png(Image.new("L", (3000, 3000), 0))  # 9 MP > the 4 MP test limit, ~10 kB on disk
    res = image_service.add(
        [
            Upload(b"not an image at all", "notes.txt", tags=[tag]),
            Upload(good, "../../etc/passwd.png", "a pink flower", [tag, "Flower ", "flower"]),
            Upload(truncated, "broken.jpg", tags=[tag]),
            Upload(bomb, "bomb.png", tags=[tag]),
            Upload(good, "again.png", tags=[tag]),
        ]
    )
    assert [r.status for r in res] == ["rejected", "added", "rejected", "rejected", "duplicate"]
    assert [r.reason for r in res] == [
        "not_an_image",
        None,
        "corrupt",
        "too_many_pixels",
        "same_file_in_batch",
    ]
    assert all(r.message for r in res if r.status != "added")
    assert res[4].id == res[1].id
    row = image_service.get(res[1].id)  # type: ignore[arg-type]
    assert row["source_name"] == "passwd.png"  # display name only: the last component
    assert row["tags"] == [tag, "flower"]  # normalised and deduplicated
    assert (row["width"], row["height"], row["format"]) == (640, 427, "PNG")
    assert row["auto_labels"], "the CNN's class names are stored"
    # the file lives under the media dir by content hash, whatever the client called it
    path, mime = image_service.file(row["id"], "original")
    assert path.read_bytes() == good and mime == "image/png"
    assert path.is_relative_to(image_service.media.root) and row["sha256"] in path.name
    thumb, tmime = image_service.file(row["id"], "thumbnail")
    with Image.open(thumb) as t:
        assert max(t.size) == image_service.config.thumbnail_px and tmime == "image/webp"


def test_same_file_again_is_a_duplicate(
    image_service: ImageService, sample_images: dict[str, Image.Image], tag: str
) -> None:
    data = unique_png(sample_images["hopper"])
    first = image_service.add([Upload(data, "a.png", tags=[tag])])[0]
    again = image_service.add([Upload(data, "b.png", "other caption", [tag])])[0]
    assert (first.status, again.status, again.reason) == ("added", "duplicate", "already_stored")
    assert again.id == first.id
    assert image_service.get(first.id)["caption"] is None  # type: ignore[arg-type]


def test_recompressed_copy_is_flagged_as_near_duplicate(
    image_service: ImageService, sample_images: dict[str, Image.Image], tag: str
) -> None:
    first = image_service.add([Upload(unique_png(sample_images["china"]), tags=[tag])])[0]
    copy = image_service.add(
        [Upload(encode_jpeg(STANDARD["resize_50"](sample_images["china"]), 80), tags=[tag])]
    )[0]
    assert copy.status == "added"  # different bytes: stored, but reported
    assert copy.near_duplicate_of is not None and copy.near_duplicate_score >= 0.85  # type: ignore[operator]
    # It points at a stored copy of the same photo (other tests in the session may have stored one too).
    path, _ = image_service.file(copy.near_duplicate_of, "original")  # type: ignore[arg-type]
    with Image.open(path) as stored_im:
        pixels = np.asarray(stored_im.convert("RGB"), dtype=np.float32)
    assert first.status == "added"
    assert pixels.shape == (427, 640, 3)
    assert np.abs(pixels - np.asarray(sample_images["china"], dtype=np.float32)).mean() < 5


def test_a_near_duplicate_within_one_batch_is_named(image_service: ImageService, tag: str) -> None:
    """The near-duplicate search saw only images stored before the batch: a folder's edited copies,
    sent together (`images add DIR` sends 16 at a time), were never flagged against each other."""
    rng = np.random.default_rng(abs(hash(tag)) % 2**32)
    blobs = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
        (320, 240), Image.BILINEAR
    )
    first, copy = image_service.add(
        [Upload(encode_png(blobs), tags=[tag]), Upload(encode_jpeg(blobs, 85), tags=[tag])]
    )
    assert (first.status, copy.status) == ("added", "added")
    assert copy.near_duplicate_of == first.id and copy.near_duplicate_score >= 0.85, copy  # type: ignore[operator]


@pytest.mark.parametrize("edit", ["thumbnail_25", "crop_corner_70", "jpeg_q30", "colour_jitter", "combined"])
def test_edited_copy_finds_its_original_at_rank_1(
    edit: str, image_service: ImageService, stored: Stored, sample_images: dict[str, Image.Image]
) -> None:
    for name, image_id in stored.ids.items():
        query = encode_jpeg(STANDARD[edit](sample_images[name]), 80)
        out = image_service.search_image(query, k=3, filters=stored.window)
        assert out.hits[0].image["id"] == image_id, (edit, name, [(h.image["id"], h.score) for h in out.hits])
        assert out.hits[0].source == "image"


def test_similar_excludes_the_image_itself_and_honours_threshold(
    image_service: ImageService, stored: Stored
) -> None:
    out = image_service.similar(stored["china"], k=5, filters=stored.window)
    ids = [h.image["id"] for h in out.hits]
    assert stored["china"] not in ids and set(ids) == {stored["flower"], stored["hopper"]}
    assert out.hits[0].score >= out.hits[1].score
    none = image_service.similar(stored["china"], k=5, min_score=0.99, filters=stored.window)
    assert none.hits == []
    with pytest.raises(ImageNotFound):
        image_service.similar(10**12)


def test_text_search_by_caption_korean_and_english(image_service: ImageService, stored: Stored) -> None:
    f = stored.window
    out = image_service.search_text("오래된 절의 기와 지붕", k=3, filters=f, sources=["caption"])
    assert out.hits[0].image["id"] == stored["china"] and out.hits[0].source == "caption"
    out = image_service.search_text("portrait of an officer", k=3, filters=f, sources=["caption"])
    assert out.hits[0].image["id"] == stored["hopper"]
    # across languages: a Korean query for the English caption
    out = image_service.search_text("해군 장교의 초상화", k=3, filters=f, sources=["caption"])
    assert out.hits[0].image["id"] == stored["hopper"], [(h.image["caption"], h.score) for h in out.hits]


def test_text_search_without_captions_uses_the_auto_labels(
    image_service: ImageService, stored: Stored
) -> None:
    """The labels space alone (ImageNet class names the CNN gave each image) finds the portrait."""
    out = image_service.search_text("military uniform", k=3, filters=stored.window, sources=["labels"])
    assert out.hits[0].image["id"] == stored["hopper"] and out.hits[0].source == "labels"


def test_tag_and_date_filters(image_service: ImageService, stored: Stored) -> None:
    only_flower = image_service.similar(
        stored["china"], k=5, filters=replace(stored.window, tags=("flower",))
    )
    assert [h.image["id"] for h in only_flower.hits] == [stored["flower"]]
    both = replace(stored.window, tags=("flower", "hopper"))
    assert image_service.similar(stored["china"], k=5, filters=both).hits == []
    future = datetime.now(UTC) + timedelta(days=1)
    assert image_service.similar(stored["china"], filters=ImageFilters(created_from=future)).hits == []
    past = datetime.now(UTC) - timedelta(days=1)
    wide = image_service.similar(
        stored["china"], k=200, filters=ImageFilters(created_from=past, created_to=future)
    )
    assert {stored["flower"], stored["hopper"]} <= {h.image["id"] for h in wide.hits}


def test_exact_and_hnsw_paths_agree(image_service: ImageService, stored: Stored) -> None:
    f = stored.window
    exact = image_service.similar(stored["hopper"], k=2, filters=f, path="exact")
    hnsw = image_service.similar(stored["hopper"], k=2, filters=f, path="hnsw")
    assert exact.paths == {image_service.image_space.name: "exact"}
    assert hnsw.paths == {image_service.image_space.name: "hnsw"}
    assert [h.image["id"] for h in exact.hits] == [h.image["id"] for h in hnsw.hits]
    np.testing.assert_allclose([h.score for h in exact.hits], [h.score for h in hnsw.hits], atol=1e-5)


def test_bad_inputs_are_service_errors(image_service: ImageService, stored: Stored) -> None:
    with pytest.raises(ImageServiceError):
        image_service.search_text("   ")
    with pytest.raises(ImageServiceError):
        image_service.search_text("x" * 5000)
    with pytest.raises(ImageServiceError):
        image_service.similar(stored["china"], k=0)
    res = image_service.add([Upload(b"x", tags=["a" * 100])])[0]
    assert (res.status, res.reason) == ("rejected", "invalid_metadata")
    with pytest.raises(ImageServiceError):
        image_service.add([Upload(b"x")] * (image_service.config.max_batch_files + 1))


def test_delete_removes_row_vectors_and_files(
    image_service: ImageService, sample_images: dict[str, Image.Image], tag: str
) -> None:
    res = image_service.add([Upload(unique_png(sample_images["flower"]), tags=[tag])])[0]
    path, _ = image_service.file(res.id, "original")  # type: ignore[arg-type]
    image_service.delete(res.id)  # type: ignore[arg-type]
    assert not path.exists()
    with pytest.raises(ImageNotFound):
        image_service.get(res.id)  # type: ignore[arg-type]
    with pytest.raises(ImageNotFound):
        image_service.delete(res.id)  # type: ignore[arg-type]


def test_the_same_bytes_added_while_a_delete_cleans_up_keep_their_file(
    image_service: ImageService,
    sample_images: dict[str, Image.Image],
    tag: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delete's row is gone before its files; an add of the same bytes in that gap finds the files
    still there and stores a row. The delete then must not take the files from under that row."""
    data = unique_png(sample_images["flower"])
    first = image_service.add([Upload(data, tags=[tag])])[0]
    real_lock, again, calls = repo.lock_files, [], []

    def add_in_the_gap(conn: Any, shas: Any) -> None:
        calls.append(1)
        if len(calls) == 1:  # the delete's clean-up: another request adds the same bytes first
            worker = threading.Thread(target=lambda: again.append(image_service.add([Upload(data)])[0]))
            worker.start()
            worker.join()
        real_lock(conn, shas)

    monkeypatch.setattr(repo, "lock_files", add_in_the_gap)
    image_service.delete(first.id)  # type: ignore[arg-type]
    assert again[0].status == "added" and len(calls) == 2
    path, _ = image_service.file(again[0].id, "original")
    assert path.read_bytes() == data


def test_reindex_skips_an_image_whose_file_is_gone_and_goes_on(
    db: Any,
    db_settings: Any,
    text_encoder: Any,
    image_config: Any,
    image_service: ImageService,
    sample_images: dict[str, Image.Image],
    tag: str,
) -> None:
    from hanseek.encoders.image_descriptor import DescriptorEncoder

    lost, kept = image_service.add(
        [Upload(unique_png(sample_images["flower"]), tags=[tag]), Upload(unique_png(sample_images["china"]))]
    )
    image_service.file(lost.id, "original")[0].unlink()  # type: ignore[arg-type]
    fresh = type("Fresh", (DescriptorEncoder,), {"name": f"descriptor-{tag}"})()  # a new, empty space
    svc = ImageService(db, db_settings.media_dir, image_config, fresh, lambda: text_encoder)
    skipped: dict[int, str] = {}
    n = svc.reindex(on_skip=lambda image_id, why: skipped.setdefault(image_id, why), batch=4)
    assert lost.id in skipped and "cannot be read" in skipped[lost.id]
    assert n >= 1 and kept.id not in skipped
    with db.connection() as conn:
        assert kept.id not in repo.ids_without_vectors(conn, svc.image_space)
        assert lost.id in repo.ids_without_vectors(conn, svc.image_space)


def test_reindex_passes_over_an_image_deleted_while_its_batch_encodes(
    db: Any,
    db_settings: Any,
    text_encoder: Any,
    image_config: Any,
    image_service: ImageService,
    sample_images: dict[str, Image.Image],
    tag: str,
) -> None:
    from hanseek.encoders.image_descriptor import DescriptorEncoder

    gone, kept = image_service.add(
        [Upload(unique_png(sample_images["flower"]), tags=[tag]), Upload(unique_png(sample_images["china"]))]
    )

    class Fresh(DescriptorEncoder):
        name = f"descriptor-{tag}"  # a new, empty space

        def encode_images(self, images: Any) -> Any:
            out = super().encode_images(images)
            deleted.append(gone.id)
            image_service.delete(gone.id)  # type: ignore[arg-type]  # another request, meanwhile
            return out

    deleted: list[Any] = []
    svc = ImageService(db, db_settings.media_dir, image_config, Fresh(), lambda: text_encoder)
    with db.connection() as conn:
        todo = repo.ids_without_vectors(conn, svc.image_space)
    n = svc.reindex(batch=len(todo))  # one batch: the deleted image's vector was computed with the rest
    assert deleted == [gone.id]
    with db.connection() as conn:
        # Earlier tests may have left images whose files are gone: those are skipped, the rest stored.
        left = repo.ids_without_vectors(conn, svc.image_space)
        assert repo.get_vector(conn, svc.image_space, kept.id) is not None  # type: ignore[arg-type]
    assert gone.id not in left and kept.id not in left and n == len(set(todo) - set(left) - {gone.id}) >= 1


def test_reindex_fills_a_new_image_space(
    db: Any, db_settings: Any, text_encoder: Any, image_config: Any, stored: Stored
) -> None:
    """Switching the image model: stored files are re-encoded into the new model's space."""
    from hanseek.encoders.image_descriptor import DescriptorEncoder

    svc = ImageService(db, db_settings.media_dir, image_config, DescriptorEncoder(), lambda: text_encoder)
    n = svc.reindex()
    assert n >= 3
    assert svc.reindex() == 0
    out = svc.similar(stored["china"], k=1)
    assert out.paths == {"image:descriptor-v1": "exact"}


def test_a_nul_or_lone_surrogate_in_a_caption_or_tag_rejects_only_that_file(
    image_service: ImageService, sample_images: dict[str, Image.Image], tag: str
) -> None:
    good = unique_png(sample_images["flower"])
    bad = [unique_png(sample_images["flower"]) for _ in range(3)]
    res = image_service.add(
        [
            Upload(good, "good.png", "a fine caption", [tag]),
            Upload(bad[0], "nul.png", "x\x00y", [tag]),
            Upload(bad[1], "tag.png", "ok", [tag, "a\x00b"]),
            Upload(bad[2], "sur.png", "\ud800", [tag]),
        ]
    )
    assert [r.status for r in res] == ["added", "rejected", "rejected", "rejected"], [r.message for r in res]
    assert [r.reason for r in res[1:]] == ["invalid_metadata"] * 3
    assert "NUL" in res[1].message and "NUL" in res[2].message and "surrogate" in res[3].message  # type: ignore[operator]
    assert image_service.get(res[0].id)["caption"] == "a fine caption"  # type: ignore[arg-type]
    with pytest.raises(ImageServiceError, match="NUL"):
        normalize_tags(["ok", "x\x00"])


def _media_paths(svc: ImageService, data: bytes) -> list[Any]:
    from hanseek.images.decode import decode_image

    d = decode_image(data, max_pixels=svc.config.max_pixels)
    return [svc.media.original_path(d.sha256, d.ext), svc.media.thumbnail_path(d.sha256)]


def test_a_failed_transaction_removes_the_files_it_wrote(
    image_service: ImageService,
    sample_images: dict[str, Image.Image],
    tag: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = image_service.add([Upload(unique_png(sample_images["hopper"]), tags=[tag])])[0]
    kept_paths = [image_service.file(kept.id, v)[0] for v in ("original", "thumbnail")]  # type: ignore[arg-type]
    new = unique_png(sample_images["china"])

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(repo, "put_vectors", fail)
    with pytest.raises(RuntimeError, match="went away"):
        image_service.add([Upload(new, tags=[tag])])
    assert not any(p.exists() for p in _media_paths(image_service, new))  # no orphans left behind
    assert all(p.exists() for p in kept_paths)  # other images' files untouched
    with image_service.db.connection() as conn:
        assert not repo.existing_by_sha(conn, [_media_paths(image_service, new)[0].stem])


def test_the_clean_up_of_a_failed_add_keeps_files_another_request_stored_meanwhile(
    image_service: ImageService,
    sample_images: dict[str, Image.Image],
    tag: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = unique_png(sample_images["china"])
    real_put, real_lock, again, locks, puts = repo.put_vectors, repo.lock_files, [], [], []

    def fail_once(*args: Any, **kwargs: Any) -> Any:
        puts.append(1)
        if len(puts) == 1:
            raise RuntimeError("boom")
        return real_put(*args, **kwargs)

    def add_in_the_gap(conn: Any, shas: Any) -> None:
        locks.append(1)
        if len(locks) == 2:  # the failed add's clean-up: another request stores the same bytes first
            worker = threading.Thread(target=lambda: again.append(image_service.add([Upload(data)])[0]))
            worker.start()
            worker.join()
        real_lock(conn, shas)

    monkeypatch.setattr(repo, "put_vectors", fail_once)
    monkeypatch.setattr(repo, "lock_files", add_in_the_gap)
    with pytest.raises(RuntimeError, match="boom"):
        image_service.add([Upload(data, tags=[tag])])
    assert again and again[0].status == "added"
    for variant in ("original", "thumbnail"):
        path, _ = image_service.file(again[0].id, variant)  # type: ignore[arg-type]
        assert path.exists()


def test_a_concurrent_duplicate_gets_the_stored_id(
    image_service: ImageService,
    sample_images: dict[str, Image.Image],
    tag: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another request stores the same bytes between this one's duplicate check and its insert:
    the result is a duplicate with that row's id, and so is a same-batch copy."""
    data = unique_png(sample_images["hopper"])
    real_lock, other, calls = repo.lock_files, [], []

    def store_in_the_gap(conn: Any, shas: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            worker = threading.Thread(target=lambda: other.append(image_service.add([Upload(data)])[0]))
            worker.start()
            worker.join()
        real_lock(conn, shas)

    monkeypatch.setattr(repo, "lock_files", store_in_the_gap)
    res = image_service.add([Upload(data, tags=[tag]), Upload(data, tags=[tag])])
    assert other[0].status == "added" and other[0].id is not None
    assert [(r.status, r.reason) for r in res] == [
        ("duplicate", "already_stored"),
        ("duplicate", "same_file_in_batch"),
    ]
    assert res[0].id == res[1].id == other[0].id
    assert str(other[0].id) in res[0].message  # type: ignore[operator]


def test_a_leading_hash_is_not_part_of_a_tag() -> None:
    """Cards show tags as "#sky": one typed that way was stored as "#sky" (shown "##sky") and a
    filter for "sky" never found it."""
    assert normalize_tags(["#Sky", "## sea", "sky", "c#", " # "]) == ["sky", "sea", "c#"]
