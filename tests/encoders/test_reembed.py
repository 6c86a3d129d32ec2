"""Switching the text model: re-embedding posts and image texts (resumable), the swap, the CLI and
running servers following the switch. Two tiny random 384-d BERTs stand in for the old and new model;
each test gets its own scratch database (a re-embedding rewrites every post in the database)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hanseek.config import Settings
from hanseek.encoders.base import TextEncoder
from hanseek.encoders.model_registry import active_pointer, register_dir, set_active
from hanseek.encoders.reembed import ReembedError, ReembedResult, pending_job, run
from hanseek.encoders.registry import load_text_encoder
from hanseek.feed.models import EventIn, PostIn
from hanseek.feed.pgvec import to_np
from hanseek.feed.profile import decay_rate, recompute
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.feed.text import post_text
from hanseek.store.db import Database
from tests.fixtures.encoders import TINY_TEXTS, make_tiny_bert

runner = CliRunner()
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
FS = FeedSettings(index_poll_seconds=0.0)


class Interrupted(Exception):
    pass


class Counting:
    """A TextEncoder that counts the texts it encodes."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner, self.name, self.dim, self.texts = inner, inner.name, inner.dim, 0

    def encode(
        self, texts: Sequence[str], kind: Any = "passage", batch_size: int | None = None
    ) -> np.ndarray:
        self.texts += len(texts)
        return self.inner.encode(texts, kind=kind)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("reembed")
    models = d / "models"
    make_tiny_bert(models / "tiny-a", seed=1, hidden=384)
    make_tiny_bert(models / "tiny-b", seed=2, hidden=384)
    make_tiny_bert(models / "tiny-32", seed=3, hidden=32)
    return d


@pytest.fixture(scope="module")
def encoders(data_dir: Path) -> dict[str, TextEncoder]:
    s = Settings(data_dir=data_dir)
    return {name: load_text_encoder(s, name) for name in ("tiny-a", "tiny-b")}


@pytest.fixture()
def settings(data_dir: Path, scratch_url: str) -> Iterator[Settings]:
    s = Settings(data_dir=data_dir, database_url=scratch_url, model_poll_seconds=0.0)
    yield s
    (s.models_dir / "active.json").unlink(missing_ok=True)


@pytest.fixture()
def sdb(settings: Settings, encoders: dict[str, TextEncoder]) -> Iterator[Database]:
    """A migrated scratch database with both models registered and tiny-a active."""
    database = Database.open(settings)
    database.migrate()
    for name in ("tiny-a", "tiny-b", "tiny-32"):
        register_dir(database, name, settings.models_dir / name)
    set_active(database, settings, "tiny-a")
    yield database
    database.close()


def _service(db: Database, enc: TextEncoder, *, memory: bool = False) -> FeedService:
    fs = FS.model_copy(update={"memory_index": memory})
    return FeedService(db, settings=fs, encoder=lambda: enc, follow=False, load_in_background=False)


def _posts(n: int, start: int = 0) -> list[PostIn]:
    return [
        PostIn(
            id=f"p{i:03d}",
            community=f"c{i % 3}",
            author=f"a{i % 4}",
            title=TINY_TEXTS[i % len(TINY_TEXTS)],
            body=TINY_TEXTS[(i * 3 + 1) % len(TINY_TEXTS)] + f" {i}",
            created_at=NOW - timedelta(hours=i),
        )
        for i in range(start, start + n)
    ]


def _seed(db: Database, enc: TextEncoder, n: int = 23) -> FeedService:
    svc = _service(db, enc)
    svc.ingest_posts(_posts(n))
    svc.set_memberships("u1", ["c0", "c1", "c2"])
    svc.set_memberships("u2", ["c0"])
    svc.record_events(
        [
            EventIn(user_id="u1", post_id="p001", kind="read", at=NOW),
            EventIn(user_id="u1", post_id="p004", kind="like", at=NOW + timedelta(minutes=1)),
            EventIn(user_id="u1", post_id="p007", kind="comment", at=NOW + timedelta(minutes=2)),
            EventIn(user_id="u2", post_id="p003", kind="read", at=NOW),
            EventIn(user_id="u2", post_id="p000", kind="like", at=NOW + timedelta(minutes=3)),
        ]
    )
    return svc


def _stored(db: Database) -> dict[str, tuple[str, np.ndarray]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT id, title, body, category, community, author, embedding FROM posts ORDER BY id"
        ).fetchall()
    keys = ("title", "body", "category", "community", "author")
    return {
        r[0]: (
            post_text(dict(zip(keys, r[1:6], strict=True)), FS.text_fields, FS.max_body_chars),
            to_np(r[6]),
        )
        for r in rows
    }


def _assert_vectors_from(db: Database, enc: TextEncoder) -> None:
    stored = _stored(db)
    ids = sorted(stored)
    want = enc.encode([stored[i][0] for i in ids], kind="passage")
    got = np.stack([stored[i][1] for i in ids])
    np.testing.assert_allclose(got, want, atol=1e-5)


def _assert_profiles_recomputed(db: Database) -> None:
    with db.connection() as conn:
        users = [r[0] for r in conn.execute("SELECT id FROM users").fetchall()]
        for user in users:
            rows = conn.execute(
                "SELECT p.embedding, e.weight, extract(epoch FROM e.at)::float8 FROM events e "
                "JOIN posts p ON p.id = e.post_id WHERE e.user_id = %s",
                (user,),
            ).fetchall()
            ref = recompute(
                np.stack([to_np(r[0], np.float64) for r in rows]),
                [float(r[1]) for r in rows],
                [float(r[2]) for r in rows],
                decay_rate(FS.decay_half_life_days),
            )
            prof = conn.execute(
                "SELECT vec_sum, weight FROM user_profiles WHERE user_id = %s", (user,)
            ).fetchone()
            assert prof is not None
            np.testing.assert_allclose(to_np(prof[0]), ref.vec_sum, atol=1e-4)
            assert float(prof[1]) == pytest.approx(ref.weight)


def test_reembed_swaps_posts_profiles_and_active_model(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder]
) -> None:
    old, new = encoders["tiny-a"], encoders["tiny-b"]
    svc = _seed(sdb, old)
    _assert_vectors_from(sdb, old)
    reader = _service(sdb, old, memory=True)  # a serving process's in-process index
    with sdb.connection() as conn:
        p5 = conn.execute(
            "SELECT rid, community, extract(epoch FROM created_at) FROM posts WHERE id = 'p005'"
        ).fetchone()
    assert p5 is not None
    key = [(int(p5[0]), p5[1], float(p5[2]))]
    before = reader.index.vectors(key)[1][0]  # type: ignore[union-attr]

    def during(batch: int) -> None:
        if batch == 1:  # edit a post already staged, add a new one: both must end up re-staged
            svc.ingest_posts([_posts(1)[0].model_copy(update={"title": "주말에 자전거를 탔다", "body": ""})])
            svc.ingest_posts(_posts(1, start=40))

    result = run(sdb, settings, "tiny-b", encoder=new, batch_size=8, after_batch=during, feed_settings=FS)
    assert result.swapped and result.posts_swapped == 24 and result.profiles == 2
    assert result.posts_encoded == 23 + 2 and result.posts_skipped == 0
    _assert_vectors_from(sdb, new)  # p000's new text and p040 included
    _assert_profiles_recomputed(sdb)
    with sdb.connection() as conn:
        assert conn.execute("SELECT name FROM models WHERE active").fetchone() == ("tiny-b",)
        assert conn.execute("SELECT count(*) FROM reembed_staging").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM reembed_jobs").fetchone() == (0,)
    assert active_pointer(settings) == "tiny-b" and pending_job(sdb) is None

    # The in-process index follows the rewritten rows like any other post change.
    reader.refresh_index()
    after = reader.index.vectors(key)[1][0]  # type: ignore[union-attr]
    want = new.encode([_stored(sdb)["p005"][0]], kind="passage")[0]
    np.testing.assert_allclose(after, want, atol=1e-5)
    assert float(before @ after) < 0.99
    reader.close()


def test_interrupted_run_keeps_old_vectors_then_resumes(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder]
) -> None:
    old, new = encoders["tiny-a"], encoders["tiny-b"]
    svc = _seed(sdb, old)
    feed_before = svc.feed("u1", k=5, days=None, at=NOW, method="similar")

    def stop(batch: int) -> None:
        if batch == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        run(sdb, settings, "tiny-b", encoder=new, batch_size=5, after_batch=stop, feed_settings=FS)
    job = pending_job(sdb)
    assert job is not None and job.model == "tiny-b" and job.from_model == "tiny-a"
    assert (job.posts, job.staged) == (23, 10)
    # Nothing the service reads changed: old vectors, old profiles, old active model.
    _assert_vectors_from(sdb, old)
    assert svc.feed("u1", k=5, days=None, at=NOW, method="similar").items == feed_before.items
    assert active_pointer(settings) == "tiny-a"
    with sdb.connection() as conn:
        assert conn.execute("SELECT name FROM models WHERE active").fetchone() == ("tiny-a",)

    # Between runs the service (still on the old model) edits a staged post and adds one.
    svc.ingest_posts([_posts(1)[0].model_copy(update={"body": "새로 나온 휴대폰"})])
    svc.ingest_posts(_posts(1, start=30))
    counting = Counting(new)
    result = run(sdb, settings, "tiny-b", encoder=counting, batch_size=5, feed_settings=FS)
    assert result.posts_skipped == 9  # 10 staged, one of them edited since
    assert result.posts_encoded == counting.texts == 24 - 9
    _assert_vectors_from(sdb, new)
    _assert_profiles_recomputed(sdb)
    assert pending_job(sdb) is None and active_pointer(settings) == "tiny-b"


def test_image_texts_get_the_new_models_spaces(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder]
) -> None:
    from psycopg.types.json import Jsonb

    from hanseek.images import repo
    from hanseek.images.service import caption_document, labels_document

    old, new = encoders["tiny-a"], encoders["tiny-b"]
    rows = [
        ("a" * 64, "서울에서 맛있는 냉면집", ["냉면"], []),
        ("b" * 64, None, [], [["tabby", 0.7]]),
        ("c" * 64, None, [], []),  # nothing to embed
    ]
    with sdb.connection() as conn:
        ids: list[int] = []
        for sha, caption, tags, labels in rows:
            values = {"sha256": sha, "format": "PNG", "mime": "image/png", "ext": "png", "bytes": 10}
            values |= {"width": 1, "height": 1, "caption": caption, "tags": tags}
            new_id = repo.insert_image(conn, values | {"auto_labels": Jsonb(labels)})
            assert new_id is not None
            ids.append(new_id)
        old_caption = repo.ensure_space(conn, "caption", old.name, old.dim)
        repo.put_vectors(conn, old_caption, [ids[0]], old.encode(["x"]))
    result = run(sdb, settings, "tiny-b", encoder=new, feed_settings=FS)
    assert result.images_encoded == 2
    with sdb.connection() as conn:
        cap = repo.find_space(conn, "caption", "tiny-b")
        lab = repo.find_space(conn, "labels", "tiny-b")
        assert cap is not None and lab is not None
        got_cap = repo.get_vector(conn, cap, ids[0])
        got_lab = repo.get_vector(conn, lab, ids[1])
        assert repo.get_vector(conn, cap, ids[2]) is None and repo.get_vector(conn, cap, ids[1]) is None
        assert repo.get_vector(conn, old_caption, ids[0]) is not None  # the old space is left alone
    assert got_cap is not None and got_lab is not None
    np.testing.assert_allclose(
        got_cap, new.encode([caption_document(rows[0][1], ["냉면"]) or ""])[0], atol=1e-5
    )
    np.testing.assert_allclose(got_lab, new.encode([labels_document([("tabby", 0.7)]) or ""])[0], atol=1e-5)

    # tiny-b is active now: re-embedding to it again redoes its image vectors too, not only the
    # posts (a vector in its space made some other way is replaced).
    with sdb.connection() as conn:
        repo.put_vectors(conn, cap, [ids[0]], old.encode(["x"]))
    again = run(sdb, settings, "tiny-b", encoder=new, feed_settings=FS)
    assert again.images_encoded == 2
    with sdb.connection() as conn:
        redone = repo.get_vector(conn, cap, ids[0])
    assert redone is not None
    np.testing.assert_allclose(redone, got_cap, atol=1e-5)


def test_other_dimension_is_refused(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder]
) -> None:
    _seed(sdb, encoders["tiny-a"], n=8)
    with pytest.raises(ReembedError, match="32-d vectors but posts and user profiles hold 384-d"):
        run(sdb, settings, "tiny-32", feed_settings=FS)
    assert pending_job(sdb) is None
    with pytest.raises(ReembedError, match="not registered"):
        run(sdb, settings, "nope", feed_settings=FS)


def _env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HANSEEK_DATABASE_URL", str(settings.database_url))
    monkeypatch.delenv("HANSEEK_TEXT_MODEL", raising=False)


def test_cli_use_reembed_and_list(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hanseek.cli import app

    _env(settings, monkeypatch)
    _seed(sdb, encoders["tiny-a"])
    r = runner.invoke(app, ["models", "use", "no-such-model"])
    assert r.exit_code == 2 and "unknown text model 'no-such-model'" in r.output
    r = runner.invoke(app, ["models", "use", "tiny-32"])
    assert r.exit_code == 2 and "not supported" in " ".join(r.output.split())
    r = runner.invoke(app, ["models", "reembed", "../elsewhere"])
    assert r.exit_code == 2 and "does not exist" in " ".join(r.output.split())
    r = runner.invoke(app, ["models", "reembed"])
    assert r.exit_code == 0 and "no re-embedding is pending" in r.output

    _start_and_interrupt(sdb, settings, encoders["tiny-b"], "tiny-b")
    r = runner.invoke(app, ["models", "list"])
    out = " ".join(r.output.split())
    assert (
        r.exit_code == 0
        and "pending re-embedding to tiny-b (from tiny-a" in out
        and "4/23 posts staged" in out
    )

    r = runner.invoke(app, ["models", "reembed", "--batch-size", "8"])
    out = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "19 posts encoded, 4 already staged" in out and "active text model: tiny-b" in out
    _assert_vectors_from(sdb, encoders["tiny-b"])

    # Back to tiny-a: `use` re-embeds by itself; --no-reembed only flips (and says what that means).
    r = runner.invoke(app, ["models", "use", "tiny-a"])
    assert r.exit_code == 0 and "active text model: tiny-a" in r.output, r.output
    _assert_vectors_from(sdb, encoders["tiny-a"])
    r = runner.invoke(app, ["models", "use", "tiny-a"])
    assert r.exit_code == 0 and "already the active text model" in r.output
    r = runner.invoke(app, ["models", "use", "tiny-b", "--no-reembed"])
    assert r.exit_code == 0 and "do not compare" in " ".join(r.output.split())
    _assert_vectors_from(sdb, encoders["tiny-a"])
    assert active_pointer(settings) == "tiny-b"


def test_app_state_follows_the_active_model(sdb: Database, settings: Settings) -> None:
    from hanseek.api.state import AppState

    state = AppState(settings, sdb)
    assert state.text_encoder.name == "tiny-a"
    set_active(sdb, settings, "tiny-b")
    state.text_encoder  # noqa: B018 - the check starts the background load
    deadline = time.monotonic() + 60
    while state.text_encoder.name != "tiny-b" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.text_encoder.name == "tiny-b"
    pinned = AppState(settings.model_copy(update={"text_model": "tiny-a"}), sdb)
    pinned.settings.model_fields_set.add("text_model")
    assert pinned.text_encoder.name == "tiny-a"
    time.sleep(0.05)
    assert pinned.text_encoder.name == "tiny-a"  # HANSEEK_TEXT_MODEL pins the model


def test_app_state_loads_a_switched_model_once_when_asked_together(
    sdb: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background poll and writers that find the switch at the same moment share one load."""
    import threading

    from hanseek.api.state import AppState
    from hanseek.encoders import registry

    state = AppState(settings, sdb)
    assert state.text_encoder.name == "tiny-a"
    set_active(sdb, settings, "tiny-b")
    real, loads = registry.load_text_encoder, []

    def counted(*args: object, **kwargs: object) -> TextEncoder:
        loads.append(args[1:])
        time.sleep(0.2)  # a model read from disk takes a while: the others ask meanwhile
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "load_text_encoder", counted)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(state._load_active("tiny-b"))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 4 and state.text_encoder.name == "tiny-b"
    assert loads == [("tiny-b",)]


@pytest.mark.parametrize("model", ["tiny-b", "tiny-a"])  # a switch; a redo of the active model
def test_a_run_whose_job_another_run_finished_reports_that_not_an_error(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder], model: str
) -> None:
    """Two `models reembed tiny-b` at once: the one that lost the race found the job row gone and said
    it was "dropped by another command" (exit 2) although the other had switched to tiny-b. For a
    redo of the active tiny-a the loser said so until session 19, since "job gone, model active" was
    already true before it began; the job id the swap records on the model tells the two apart."""
    _seed(sdb, encoders["tiny-a"], n=12)

    def finish_elsewhere(batch: int) -> None:
        if batch == 1:  # the other run completes the whole job, swap included
            other = run(sdb, settings, model, encoder=encoders[model], batch_size=64, feed_settings=FS)
            assert other.swapped

    result = _run_in_batches_of_4(sdb, settings, encoders[model], model, finish_elsewhere)
    assert result.swapped and any(
        f"another run finished the re-embedding to {model}" in n for n in result.notes
    )
    assert pending_job(sdb) is None and active_pointer(settings) == model
    _assert_vectors_from(sdb, encoders[model])


def _run_in_batches_of_4(
    sdb: Database, settings: Settings, encoder: TextEncoder, model: str, after_batch: Callable[[int], None]
) -> ReembedResult:
    """A re-embedding to `model` that stages 4 posts at a time and calls `after_batch` after each."""
    return run(sdb, settings, model, encoder=encoder, batch_size=4, after_batch=after_batch, feed_settings=FS)


def _start_and_interrupt(sdb: Database, settings: Settings, encoder: TextEncoder, model: str) -> None:
    """A re-embedding to `model` interrupted after its first staged batch (its job stays pending)."""

    def stop(batch: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        _run_in_batches_of_4(sdb, settings, encoder, model, stop)


def test_a_redo_of_the_active_model_whose_job_was_dropped_is_not_taken_for_finished(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder]
) -> None:
    """A redo's model was active before it began, so "job gone, model active" proves nothing there:
    a job dropped by a re-embedding to another model must stay an error (review of the change above)."""
    _seed(sdb, encoders["tiny-a"], n=12)

    def other_model_starts(batch: int) -> None:
        if batch == 1:  # drops tiny-a's job, stops after its own first batch
            _start_and_interrupt(sdb, settings, encoders["tiny-b"], "tiny-b")

    with pytest.raises(ReembedError, match="dropped by another command"):
        _run_in_batches_of_4(sdb, settings, encoders["tiny-a"], "tiny-a", other_model_starts)
    job = pending_job(sdb)
    assert job is not None and job.model == "tiny-b"


def test_a_redo_whose_job_was_dropped_and_started_again_and_finished_is_not_taken_for_its_own(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder]
) -> None:
    """An older swap of the same model proves nothing about this run's job: dropped, then a new job
    to tiny-b swapped, then tiny-a active again without a re-embedding — still an error."""
    from hanseek.encoders.model_registry import set_active

    _seed(sdb, encoders["tiny-a"], n=12)
    run(sdb, settings, "tiny-a", encoder=encoders["tiny-a"], feed_settings=FS)  # tiny-a records a job

    def elsewhere(batch: int) -> None:
        if batch == 1:
            run(sdb, settings, "tiny-b", encoder=encoders["tiny-b"], feed_settings=FS)
            set_active(sdb, settings, "tiny-a")

    with pytest.raises(ReembedError, match="dropped by another command"):
        _run_in_batches_of_4(sdb, settings, encoders["tiny-a"], "tiny-a", elsewhere)


@pytest.mark.parametrize("writer", ["server", "cli"])
def test_a_writer_that_has_not_switched_yet_ingests_with_the_new_model(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder], writer: str
) -> None:
    from hanseek.api.state import AppState
    from hanseek.encoders.reembed import ActiveEncoder

    if writer == "server":  # a server whose periodic check has not come round yet
        state = AppState(settings.model_copy(update={"model_poll_seconds": 3600.0}), sdb)
        current, check = (lambda: state.text_encoder), state.text_encoder_is_active
    else:  # a CLI command (`hanseek feed ingest`) that loaded its encoder before the switch
        active = ActiveEncoder(settings)
        current, check = active.get, active.is_active
    svc = FeedService(
        sdb, settings=FS, encoder=current, encoder_is_active=check, follow=False, load_in_background=False
    )
    svc.ingest_posts(_posts(6))
    assert current().name == "tiny-a"
    run(sdb, settings, "tiny-b", encoder=encoders["tiny-b"], feed_settings=FS)
    assert current().name == "tiny-a"  # not noticed yet
    # Its next write finds the switch in its own transaction, loads tiny-b and encodes again.
    svc.ingest_posts(_posts(2, start=50))
    assert current().name == "tiny-b"
    _assert_vectors_from(sdb, encoders["tiny-b"])


def test_a_job_dropped_by_another_command_stops_with_a_message(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder]
) -> None:
    from hanseek.encoders.reembed import drop_jobs

    _seed(sdb, encoders["tiny-a"], n=12)

    def drop(batch: int) -> None:
        if batch == 1:
            assert drop_jobs(sdb) == ["tiny-b"]  # e.g. `models use tiny-a --no-reembed` meanwhile

    with pytest.raises(ReembedError, match="dropped by another command"):
        _run_in_batches_of_4(sdb, settings, encoders["tiny-b"], "tiny-b", drop)
    assert pending_job(sdb) is None
    _assert_vectors_from(sdb, encoders["tiny-a"])


@pytest.mark.parametrize("writer", ["server", "cli"])
def test_an_image_upload_after_a_switch_uses_the_new_models_spaces(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder], writer: str
) -> None:
    import io

    from PIL import Image

    from hanseek.api.state import AppState
    from hanseek.encoders.image_descriptor import DescriptorEncoder
    from hanseek.encoders.reembed import ActiveEncoder
    from hanseek.images import repo
    from hanseek.images.config import ImageSettings
    from hanseek.images.service import ImageService, Upload

    if writer == "server":
        state = AppState(settings.model_copy(update={"model_poll_seconds": 3600.0}), sdb)
        current, check = (lambda: state.text_encoder), state.text_encoder_is_active
    else:
        active = ActiveEncoder(settings)
        current, check = active.get, active.is_active
    svc = ImageService(sdb, settings.media_dir, ImageSettings(), DescriptorEncoder(), current, check)
    assert current().name == "tiny-a"
    run(sdb, settings, "tiny-b", encoder=encoders["tiny-b"], feed_settings=FS)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="PNG")
    [res] = svc.add([Upload(buf.getvalue(), "red.png", caption="서울에서 맛있는 냉면집")])
    assert res.status == "added" and res.id is not None
    assert current().name == "tiny-b"
    with sdb.connection() as conn:
        new_space = repo.find_space(conn, "caption", "tiny-b")
        old_space = repo.find_space(conn, "caption", "tiny-a")
        assert new_space is not None
        got = repo.get_vector(conn, new_space, res.id)
        assert old_space is None or repo.get_vector(conn, old_space, res.id) is None
    assert got is not None
    np.testing.assert_allclose(got, encoders["tiny-b"].encode(["서울에서 맛있는 냉면집"])[0], atol=1e-5)


def test_a_model_of_another_dimension_is_refused_on_an_empty_database_too(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hanseek.cli import app

    _env(settings, monkeypatch)
    r = runner.invoke(app, ["models", "use", "tiny-32"])  # nothing stored, but the columns are 384-d
    assert r.exit_code == 2 and "not supported" in " ".join(r.output.split()), r.output
    assert active_pointer(settings) != "tiny-32"


def test_a_switch_without_reembedding_refuses_content_that_arrived_meanwhile(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder]
) -> None:
    from hanseek.encoders.model_registry import ContentAppeared, set_active

    set_active(sdb, settings, "tiny-b", require_empty=True)  # nothing stored: a plain switch
    _seed(sdb, encoders["tiny-b"], n=8)  # a writer stores posts before the next switch
    with pytest.raises(ContentAppeared):
        set_active(sdb, settings, "tiny-a", require_empty=True)
    with sdb.connection() as conn:
        assert conn.execute("SELECT name FROM models WHERE active").fetchone() == ("tiny-b",)


def _broken_model_dirs(models_dir: Path) -> dict[str, Path]:
    """A copy of tiny-a whose weights are cut off mid-file, and a directory holding only config.json."""
    import shutil

    truncated = models_dir / "broken-weights"
    shutil.copytree(models_dir / "tiny-a", truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    config_only = models_dir / "config-only"
    config_only.mkdir()
    shutil.copy(models_dir / "tiny-a" / "config.json", config_only / "config.json")
    return {"broken-weights": truncated, "config-only": config_only}


@pytest.mark.parametrize("contents", ["empty", "seeded"])
def test_use_of_a_broken_model_is_one_error_line_and_registers_nothing(
    sdb: Database,
    settings: Settings,
    encoders: dict[str, TextEncoder],
    monkeypatch: pytest.MonkeyPatch,
    contents: str,
) -> None:
    import shutil

    from hanseek.cli import app
    from hanseek.cli.common import console

    _env(settings, monkeypatch)
    monkeypatch.setattr(console, "_width", 250)  # one table row per model
    if contents == "seeded":
        _seed(sdb, encoders["tiny-a"])
    broken = _broken_model_dirs(settings.models_dir)
    try:
        for name in broken:
            r = runner.invoke(app, ["models", "use", name])
            assert r.exit_code == 2, r.output
            assert r.output.count("error:") == 1 and "Traceback" not in r.output, r.output
            assert f"cannotloadmodelfrom{broken[name]}:" in "".join(r.output.split())
            with sdb.connection() as conn:
                assert conn.execute("SELECT 1 FROM models WHERE name = %s", (name,)).fetchone() is None
            r = runner.invoke(app, ["models", "list"])
            line = next(ln for ln in r.output.splitlines() if f" {name} " in ln)
            assert "ready" not in line and "not registered" in line, r.output
        assert active_pointer(settings) == "tiny-a"
    finally:
        for path in broken.values():
            shutil.rmtree(path)


def _catalogue_active(db: Database) -> str | None:
    from hanseek.encoders.reembed import active_model

    with db.connection() as conn:
        return active_model(conn)


def test_a_switch_killed_before_its_pointer_write_is_repaired_by_readers_with_a_database(
    sdb: Database, settings: Settings, encoders: dict[str, TextEncoder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap commits, then `models/active.json` is rewritten: a kill -9 in between left the
    pointer on the old model for good, and read-only CLI commands (searches, `models list`) that
    resolve the model from it encoded with the old model. Readers with a database open follow the
    catalogue and rewrite the pointer."""
    from hanseek.cli import app
    from hanseek.cli.common import console
    from hanseek.encoders import model_registry
    from hanseek.encoders.reembed import ActiveEncoder
    from hanseek.encoders.registry import configured_model

    _env(settings, monkeypatch)
    monkeypatch.setattr(console, "_width", 250)  # one table row per model
    _seed(sdb, encoders["tiny-a"], n=8)
    real = model_registry.write_active_pointer

    def killed(s: Settings, name: str) -> None:  # the process dies right after the swap's commit
        raise Interrupted

    monkeypatch.setattr(model_registry, "write_active_pointer", killed)
    with pytest.raises(Interrupted):
        run(sdb, settings, "tiny-b", encoder=encoders["tiny-b"], feed_settings=FS)
    monkeypatch.setattr(model_registry, "write_active_pointer", real)
    assert _catalogue_active(sdb) == "tiny-b" and active_pointer(settings) == "tiny-a"
    assert configured_model(settings) == "tiny-a"  # without a database only the pointer is known

    r = runner.invoke(app, ["models", "list"])
    assert r.exit_code == 0, r.output
    marked = [ln for ln in r.output.splitlines() if "│ * │" in ln]
    assert len(marked) == 1 and " tiny-b " in marked[0] and "active: tiny-b" in r.output, r.output
    assert active_pointer(settings) == "tiny-b"  # repaired

    # A read-only CLI command's encoder (`hanseek images search`, `feed` commands) with the database.
    real(settings, "tiny-a")  # the stale pointer again
    assert ActiveEncoder(settings, sdb).get().name == "tiny-b"
    assert active_pointer(settings) == "tiny-b"
    assert ActiveEncoder(settings).get().name == "tiny-b"  # and processes without a database follow


def test_set_active_writes_the_pointer_only_after_its_commit(
    sdb: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`set_active` renamed the pointer inside its transaction: a kill -9 (or a failed commit) after
    the rename left the pointer on a model the catalogue never made active."""
    from hanseek.encoders import model_registry

    real = model_registry.write_active_pointer

    def renamed_then_killed(s: Settings, name: str) -> None:
        real(s, name)
        raise Interrupted

    monkeypatch.setattr(model_registry, "write_active_pointer", renamed_then_killed)
    with pytest.raises(Interrupted):
        set_active(sdb, settings, "tiny-b")
    monkeypatch.setattr(model_registry, "write_active_pointer", real)
    assert _catalogue_active(sdb) == active_pointer(settings) == "tiny-b"
