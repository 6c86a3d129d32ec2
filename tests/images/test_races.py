"""Image ingest and search racing other writers: a text-model switch, a caption space dropped and made
again, and processes killed between writing media files and committing (the orphan sweep). Two tiny
random 384-d BERTs stand in for the old and new text model; each test gets its own scratch database
and its own media directory."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hanseek.api.state import AppState
from hanseek.config import Settings
from hanseek.encoders.base import TextEncoder
from hanseek.encoders.image_descriptor import DescriptorEncoder
from hanseek.encoders.model_registry import register_dir, set_active
from hanseek.encoders.reembed import run
from hanseek.encoders.registry import load_text_encoder
from hanseek.feed.settings import FeedSettings
from hanseek.images import repo
from hanseek.images.config import ImageSettings
from hanseek.images.service import ImageService, Upload
from hanseek.store.db import Database
from tests.fixtures.encoders import make_tiny_bert

FS = FeedSettings(index_poll_seconds=0.0)
CAPTION = "서울에서 맛있는 냉면집"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("image-races") / "models"
    make_tiny_bert(d / "tiny-a", seed=1, hidden=384)
    make_tiny_bert(d / "tiny-b", seed=2, hidden=384)
    return d


@pytest.fixture(scope="module")
def encoders(models_dir: Path) -> dict[str, TextEncoder]:
    s = Settings(data_dir=models_dir.parent)
    return {name: load_text_encoder(s, name) for name in ("tiny-a", "tiny-b")}


@pytest.fixture()
def settings(tmp_path: Path, models_dir: Path, scratch_url: str) -> Iterator[Settings]:
    """A data dir of this test's own (so its media directory holds only this test's files) that
    sees the module's two models."""
    (tmp_path / "models").symlink_to(models_dir, target_is_directory=True)
    s = Settings(data_dir=tmp_path, database_url=scratch_url, model_poll_seconds=3600.0)
    s.ensure_dirs()
    yield s
    (s.models_dir / "active.json").unlink(missing_ok=True)


@pytest.fixture()
def sdb(settings: Settings, encoders: dict[str, TextEncoder]) -> Iterator[Database]:
    """A migrated scratch database with both models registered and tiny-a active."""
    database = Database.open(settings)
    database.migrate()
    for name in ("tiny-a", "tiny-b"):
        register_dir(database, name, settings.models_dir / name)
    set_active(database, settings, "tiny-a")
    yield database
    database.close()


def png(rgb: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), rgb).save(buf, format="PNG")
    return buf.getvalue()


def caption_vector(db: Database, model: str, image_id: int) -> np.ndarray | None:
    with db.connection() as conn:
        space = repo.find_space(conn, "caption", model)
        return None if space is None else repo.get_vector(conn, space, image_id)


class Paused:
    """Holds one thread at `owner.name` until released; every other thread passes straight through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        self.reached, self.go = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        real = getattr(owner, name)

        def hook(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is self.thread:
                self.reached.set()
                assert self.go.wait(60)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, hook)

    def start(self, fn: Callable[[], Any]) -> list[Any]:
        out: list[Any] = []

        def target() -> None:
            try:
                out.append(fn())
            except BaseException as exc:  # handed to the test through `out`
                out.append(exc)

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        assert self.reached.wait(60), "the upload never reached the pause"
        return out

    def finish(self, out: list[Any]) -> Any:
        self.go.set()
        assert self.thread is not None
        self.thread.join(60)
        assert not self.thread.is_alive() and out
        if isinstance(out[0], BaseException):
            raise out[0]
        return out[0]


# -- 1. an upload racing a text-model switch --------------------------------------------------------
@pytest.mark.parametrize(
    "pause_in",
    [
        "lock_files",  # captions encoded with the old model, the upload's transaction not begun
        "_near_duplicates",  # the old code had chosen the old model's spaces, not encoded yet
    ],
)
def test_an_upload_racing_a_model_switch_stores_its_texts_in_the_new_models_space(
    sdb: Database,
    settings: Settings,
    encoders: dict[str, TextEncoder],
    monkeypatch: pytest.MonkeyPatch,
    pause_in: str,
) -> None:
    """A server's upload that began with tiny-a finishes after `models use tiny-b` swapped and after
    another write on the same server loaded tiny-b. Until session 17 it read the server's encoder
    again for the spaces, the encoding and the active check, and so stored tiny-a (or tiny-b) vectors
    in caption:tiny-a; the swap had re-embedded only what was committed, so the image never got a
    vector in the active model's space and its caption could not find it."""
    state = AppState(settings, sdb)  # follows `hanseek models use`, as `hanseek serve` does
    svc = ImageService(
        sdb,
        settings.media_dir,
        ImageSettings(),
        DescriptorEncoder(),
        lambda: state.text_encoder,
        state.text_encoder_is_active,
    )
    assert state.text_encoder.name == "tiny-a"
    pause = Paused(monkeypatch, repo if pause_in == "lock_files" else ImageService, pause_in)
    out = pause.start(lambda: svc.add([Upload(png((200, 30, 30)), "red.png", caption=CAPTION)]))

    result = run(sdb, settings, "tiny-b", encoder=encoders["tiny-b"], feed_settings=FS)
    assert result.swapped
    [other] = svc.add([Upload(png((30, 30, 200)), "blue.png", caption="부산 바다 풍경")])
    assert other.status == "added" and state.text_encoder.name == "tiny-b"

    [res] = pause.finish(out)
    assert res.status == "added" and res.id is not None
    got = caption_vector(sdb, "tiny-b", res.id)
    assert got is not None, "no vector in the active model's caption space"
    np.testing.assert_allclose(got, encoders["tiny-b"].encode([CAPTION])[0], atol=1e-5)
    assert caption_vector(sdb, "tiny-a", res.id) is None
    with sdb.connection() as conn:
        labels_b = repo.find_space(conn, "labels", "tiny-b")
        assert labels_b is not None
    hits = svc.search_text(CAPTION, k=1, sources=["caption"]).hits
    assert [h.image["id"] for h in hits] == [res.id] and hits[0].score > 0.999


def test_a_text_search_encodes_and_searches_with_one_model(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder]
) -> None:
    """The encoder swapped between the query's encoding and the choice of spaces (a server's poll):
    until session 17 the tiny-a query vector was compared with tiny-b's spaces."""
    writer = ImageService(
        sdb, settings.media_dir, ImageSettings(), DescriptorEncoder(), lambda: encoders["tiny-a"]
    )
    [res] = writer.add([Upload(png((10, 120, 10)), caption=CAPTION)])
    reads: list[str] = []

    def swapped_after_the_first_read() -> TextEncoder:
        reads.append("read")
        return encoders["tiny-a" if len(reads) == 1 else "tiny-b"]

    svc = ImageService(
        sdb, settings.media_dir, ImageSettings(), DescriptorEncoder(), swapped_after_the_first_read
    )
    out = svc.search_text(CAPTION, k=1, sources=["caption", "labels"])
    assert set(out.paths) == {"caption:tiny-a", "labels:tiny-a"}
    assert [h.image["id"] for h in out.hits] == [res.id] and out.hits[0].score > 0.999


# -- 2. a caption space dropped and made again under a new id ---------------------------------------
def test_a_caption_space_dropped_and_made_again_is_found_under_its_new_id(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder]
) -> None:
    """`train simcse --name tiny-a --overwrite` drops tiny-a's caption and label spaces
    (`forget_vectors`), and another process makes them again under new ids. Until session 17 the
    service kept the old ids: every upload and text search failed (UndefinedTable, a 500) until a
    restart."""
    from hanseek.train.simcse_job import forget_vectors

    svc = ImageService(
        sdb, settings.media_dir, ImageSettings(), DescriptorEncoder(), lambda: encoders["tiny-a"]
    )
    [first] = svc.add([Upload(png((200, 0, 0)), caption="서울 냉면")])
    assert [h.image["id"] for h in svc.search_text("서울 냉면", k=1).hits] == [first.id]
    with sdb.connection() as conn:
        old = repo.find_space(conn, "caption", "tiny-a")
    forget_vectors(sdb, "tiny-a")
    with sdb.connection() as conn:  # e.g. `hanseek models use tiny-a` re-embedding the captions
        new = repo.ensure_space(conn, "caption", "tiny-a", encoders["tiny-a"].dim)
    assert old is not None and new.id != old.id

    [second] = svc.add([Upload(png((0, 0, 200)), caption="제주 귤")])
    assert second.status == "added" and second.id is not None
    got = caption_vector(sdb, "tiny-a", second.id)
    assert got is not None
    np.testing.assert_allclose(got, encoders["tiny-a"].encode(["제주 귤"])[0], atol=1e-5)
    out = svc.search_text("제주 귤", k=1, sources=["caption"])
    assert out.paths == {"caption:tiny-a": "exact"} and [h.image["id"] for h in out.hits] == [second.id]


def test_a_space_dropped_between_its_lookup_and_its_use_is_looked_up_again(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The narrow race left once spaces are looked up on every use: the drop commits between the
    lookup and the insert (or the search). The transaction rolls back and is tried once more."""
    from hanseek.train.simcse_job import forget_vectors

    svc = ImageService(
        sdb, settings.media_dir, ImageSettings(), DescriptorEncoder(), lambda: encoders["tiny-a"]
    )
    svc.add([Upload(png((200, 0, 0)), caption="서울 냉면")])
    with sdb.connection() as conn:
        stale = repo.find_space(conn, "caption", "tiny-a")
    forget_vectors(sdb, "tiny-a")
    real_find = repo.find_space
    stale_answers: list[repo.Space | None] = []

    def stale_once(conn: Any, kind: Any, model: str) -> repo.Space | None:
        if kind == "caption" and not stale_answers:
            stale_answers.append(stale)
            return stale  # what the lookup saw just before the drop committed
        return real_find(conn, kind, model)

    monkeypatch.setattr(repo, "find_space", stale_once)
    [res] = svc.add([Upload(png((0, 200, 0)), caption="부산 바다")])
    assert res.status == "added" and res.id is not None and stale_answers
    assert caption_vector(sdb, "tiny-a", res.id) is not None

    stale_answers.clear()
    with sdb.connection() as conn:
        stale = repo.find_space(conn, "caption", "tiny-a")
    forget_vectors(sdb, "tiny-a")
    out = svc.search_text("부산 바다", k=1, sources=["caption"])
    assert stale_answers and out.paths == {"caption:tiny-a": "exact"}


# -- 4. media files that no row names (a process killed mid add or delete) --------------------------
def _age(paths: list[Path], seconds: float = 3600.0) -> None:
    then = time.time() - seconds
    for p in paths:
        os.utime(p, (then, then))


def _media_files(settings: Settings) -> set[Path]:
    return {p for p in settings.media_dir.rglob("*") if p.is_file()}


@pytest.fixture()
def plain(settings: Settings, scratch_url: str) -> Iterator[ImageService]:
    database = Database.open(settings)
    database.migrate()
    yield ImageService(database, settings.media_dir, ImageSettings(), DescriptorEncoder(), None)
    database.close()


def test_the_sweep_removes_old_files_no_row_names_and_nothing_else(
    plain: ImageService, settings: Settings
) -> None:
    """The state `kill -9` leaves: a delete killed between its committed row delete and its unlink,
    and an add killed after writing its files, before its commit. Until session 17 nothing ever
    removed those files (and `db backup` archived them)."""
    kept, deleted = plain.add([Upload(png((1, 2, 3))), Upload(png((4, 5, 6)))])
    assert kept.id is not None and deleted.id is not None
    with plain.db.connection() as conn:  # the delete's first transaction committed, then the kill
        assert repo.delete_image(conn, deleted.id) is not None
    im = Image.new("RGB", (32, 32), (7, 8, 9))
    data = png((7, 8, 9))
    from hashlib import sha256

    sha = sha256(data).hexdigest()
    killed_add = [plain.media.save_original(sha, "png", data), plain.media.save_thumbnail(sha, im)]
    recent = png((10, 11, 12))
    recent_sha = sha256(recent).hexdigest()
    in_flight = plain.media.save_original(recent_sha, "png", recent)  # an add writing right now
    tmp = in_flight.parent / f".tmp-{recent_sha}.png"  # a killed writer's temporary file
    writing = in_flight.parent / ".tmp-being-written"  # one being written right now
    stray = settings.media_dir / "images" / "notes.txt"  # not a name this store gives a file
    tmp.write_bytes(b"partial")
    writing.write_bytes(b"partial")
    stray.write_text("mine")
    everything = _media_files(settings)
    assert deleted.sha256 is not None
    orphans = {p for p in everything if deleted.sha256 in p.name} | set(killed_add) | {tmp}
    assert len(orphans) == 5
    _age([p for p in everything if p not in (in_flight, writing)])

    assert set(plain.sweep_orphans(dry_run=True)) == orphans
    assert _media_files(settings) == everything
    assert set(plain.sweep_orphans()) == orphans
    assert _media_files(settings) == everything - orphans
    for variant in ("original", "thumbnail"):
        assert plain.file(kept.id, variant)[0].is_file()
    assert plain.sweep_orphans() == []


def test_the_sweep_waits_for_an_add_holding_the_files_lock_and_keeps_its_files(plain: ImageService) -> None:
    """An add writes its files and inserts its row under the files' lock; the sweep takes the same
    lock and looks for the row again, so it never removes a file whose row is about to commit."""
    from hashlib import sha256

    from psycopg.types.json import Jsonb

    data = png((20, 30, 40))
    sha = sha256(data).hexdigest()
    files = [
        plain.media.save_original(sha, "png", data),
        plain.media.save_thumbnail(sha, Image.open(io.BytesIO(data))),
    ]
    _age(files)  # old enough: only the lock and the row protect them
    swept: list[Any] = []
    with plain.db.connection() as conn:  # the add, between its file writes and its commit
        repo.lock_files(conn, [sha])
        sweeper = threading.Thread(target=lambda: swept.append(plain.sweep_orphans()), daemon=True)
        sweeper.start()
        assert _waits_for_a_lock(plain.db), "the sweep did not wait for the files' lock"
        assert sweeper.is_alive()
        values = dict(
            sha256=sha, format="PNG", mime="image/png", ext="png", bytes=len(data), width=64, height=48
        )
        assert repo.insert_image(conn, {**values, "tags": [], "auto_labels": Jsonb([])}) is not None
    sweeper.join(30)
    assert swept == [[]] and all(p.is_file() for p in files)


def _waits_for_a_lock(db: Database, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0"
            ).fetchone()
        if row and row[0]:
            return True
        time.sleep(0.05)
    return False


def test_images_gc_command(plain: ImageService, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from hanseek.cli import app

    [res] = plain.add([Upload(png((50, 60, 70)))])
    assert res.id is not None
    with plain.db.connection() as conn:
        repo.delete_image(conn, res.id)
    files = _media_files(settings)
    assert len(files) == 2
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HANSEEK_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("HANSEEK_IMAGE_MODEL", "descriptor")
    runner = CliRunner()
    r = runner.invoke(app, ["images", "gc"])
    assert r.exit_code == 0 and "0 orphan media file(s) removed" in r.output, r.output  # too young
    _age(list(files))
    r = runner.invoke(app, ["images", "gc", "--dry-run"])
    assert r.exit_code == 0 and "2 orphan media file(s) would be removed" in r.output, r.output
    assert _media_files(settings) == files
    r = runner.invoke(app, ["images", "gc", "--min-age", "30"])
    assert r.exit_code == 0 and "2 orphan media file(s) removed" in r.output, r.output
    assert _media_files(settings) == set()


def test_adding_stored_bytes_again_writes_back_the_files_an_image_lost(plain: ImageService) -> None:
    """A backup restored without its media archive leaves rows without files, and the restore says
    to add the images again; until session 18 that answered "duplicate" and the files stayed gone."""
    data = png((90, 91, 92))
    [first] = plain.add([Upload(data)])
    assert first.id is not None
    lost = [plain.file(first.id, variant)[0] for variant in ("original", "thumbnail")]
    original_bytes = lost[0].read_bytes()
    for path in lost:
        path.unlink()
    [again] = plain.add([Upload(data)])
    assert (again.status, again.id, again.reason) == ("duplicate", first.id, "already_stored")
    assert "missing files were written again" in (again.message or "")
    assert all(p.is_file() for p in lost) and lost[0].read_bytes() == original_bytes
    [third] = plain.add([Upload(data)])  # nothing missing: the plain duplicate message
    assert third.message == f"This file is already stored as image {first.id}."
