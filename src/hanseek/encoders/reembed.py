"""Switching the service's text model: re-embed what was encoded with the previous one, then swap.

A text model switch changes the vector space, so every stored vector made by the old model must be
made again: posts (`posts.embedding`, and through them the users' profile vectors) and the images'
caption and label vectors (spaces `caption:<model>` / `labels:<model>`). The job:

1. **Stage** (resumable, while the service keeps running on the old model and old vectors): every
   post's text (the feed's own `post_text` with the feed's text settings) is encoded by the target
   model in batches into `reembed_staging (model, post_id)`, each batch committed on its own. The
   row keeps `source_md5`, the hash of the post's text fields and the text settings: a rerun skips
   posts already staged whose text has not changed since, and re-stages posts added or edited in
   the meantime. Image caption/label vectors go straight into the target model's own spaces, which
   nothing reads before the swap (images are never edited; a space row per image means "done").
2. **Swap** (one transaction): with post and image writers held off (`SHARE ROW EXCLUSIVE`; readers
   and event recording go on), a last catch-up stages whatever changed since, then the staged
   vectors replace `posts.embedding`, every user profile is recomputed from the stored events (they
   are weighted means of post vectors), the target becomes the active model and the job row (with
   its staging rows) is deleted. Only then is `models/active.json` rewritten (the catalogue is the
   authority: a crash before the rewrite leaves a pointer that readers with a database repair).

Serving processes follow: the changed `posts.embedding` rows mark `change_xid` and NOTIFY, so the
in-process feed indexes re-read them like any other post change, and `AppState` checks the active
model on a poll and loads the new encoder (see `api/state.py`). Writers that encode (post ingest,
image uploads) also check, in their own transaction and under the switch lock that the swap holds
exclusively, that their encoder is still the active model (`locked_active_model`; `ActiveEncoder`
for CLI commands), so no vector from the previous model is stored after the swap.

A target whose dimension differs from the posts' vector columns is refused: the columns, the
in-process index and the profile arithmetic are all sized from `Settings.embed_dim`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg

from hanseek.config import Settings
from hanseek.encoders.base import EncoderError, TextEncoder

if TYPE_CHECKING:
    from hanseek.feed.settings import FeedSettings
    from hanseek.store.db import Database

log = logging.getLogger(__name__)
Conn = psycopg.Connection[Any]
# progress(phase, done, total): phase is "posts", "caption images" or "label images".
Progress = Callable[[str, int, int], None]

# What the encoder reads of a post (feed/text.py KNOWN_FIELDS) and the text settings, hashed in SQL
# so that finding the posts still to (re)stage is one anti-join, without reading the staged ones.
_SOURCE_MD5 = "md5(%(cfg)s || row(p.title, p.body, p.category, p.community, p.author)::text)"
_TODO_FROM = f"""
    FROM posts p LEFT JOIN reembed_staging s ON s.model = %(model)s AND s.post_id = p.id
    WHERE (s.post_id IS NULL OR s.source_md5 <> {_SOURCE_MD5})
"""
# Held (exclusive) by the swap transaction and (shared) by writers that check their encoder is the
# active model in their own transaction (AppState.text_encoder_is_active); "hsmodsw".
SWITCH_LOCK = 0x68736D6F647377
_MAX_PASSES = 5  # staging passes before the swap (each re-stages what changed during the previous)


class ReembedError(EncoderError):
    """A re-embedding that cannot run (dimension mismatch, unknown model, nothing pending)."""


@dataclass(frozen=True)
class JobStatus:
    model: str
    dim: int
    from_model: str | None
    started_at: datetime
    posts: int  # posts in the table now
    staged: int  # of which staged with their current text
    images_todo: int  # images with a caption or labels still missing in the target's spaces

    @property
    def remaining(self) -> int:
        return self.posts - self.staged


@dataclass
class ReembedResult:
    model: str
    posts_encoded: int = 0  # encoded by this run (staging and the swap's catch-up)
    posts_skipped: int = 0  # already staged by an earlier (interrupted) run, text unchanged
    images_encoded: int = 0
    posts_swapped: int = 0  # posts whose vector the swap replaced
    profiles: int = 0
    swapped: bool = False
    seconds: float = 0.0  # the whole run
    swap_seconds: float = 0.0  # the swap transaction (post and image writers wait this long)
    swap_phases: dict[str, float] = field(default_factory=dict)  # catch-up, vectors, profiles, commit
    notes: list[str] = field(default_factory=list)


def _feed_settings() -> FeedSettings:
    from hanseek.feed.settings import load_feed_settings

    return load_feed_settings()


def _text_config(fs: FeedSettings) -> str:
    return f"{','.join(fs.text_fields)}|{fs.max_body_chars}|"


def posts_dim(conn: Conn) -> int | None:
    """The dimension of `posts.embedding` (pgvector keeps it as the column's type modifier)."""
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'posts'::regclass AND attname = 'embedding'"
    ).fetchone()
    return int(row[0]) if row and int(row[0]) > 0 else None


def check_dim(conn: Conn, settings: Settings, model: str, dim: int) -> None:
    col = posts_dim(conn) or settings.embed_dim
    if dim != col or dim != settings.embed_dim:
        raise ReembedError(
            f"{model} makes {dim}-d vectors but posts and user profiles hold {col}-d ones "
            f"(HANSEEK_EMBED_DIM={settings.embed_dim}); switching to a model of another dimension is "
            "not supported: the vector columns, their HNSW index and the in-process feed index are "
            "sized for one dimension (see docs/encoders.md)"
        )


def active_model(conn: Conn) -> str | None:
    row = conn.execute("SELECT name FROM models WHERE active").fetchone()
    return str(row[0]) if row else None


def locked_active_model(conn: Conn) -> str | None:
    """The active model, read under the switch lock (shared) in the caller's transaction: a swap
    either committed before this read or waits until the caller's transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (SWITCH_LOCK,))
    return active_model(conn)


class ActiveEncoder:
    """The active text model for a writer without an `AppState` (CLI commands): `get()` for
    FeedService's `encoder`, `is_active` for its `encoder_is_active` (switches to the new active
    model when a swap committed since it was loaded). An explicit HANSEEK_TEXT_MODEL pins it.

    With `db`, the first `get()` loads the catalogue's active model (and repairs a stale pointer
    file); without, the pointer file's, which a crash right after a switch's commit can leave on the
    previous model: read-only commands (searches) have no later check that would correct it."""

    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db
        self.follows = "text_model" not in settings.model_fields_set
        self._encoder: TextEncoder | None = None

    def get(self) -> TextEncoder:
        from hanseek.encoders.registry import load_text_encoder

        if self._encoder is None:
            self._encoder = load_text_encoder(self.settings, db=self.db)
        return self._encoder

    def is_active(self, conn: Conn, encoder: TextEncoder) -> bool:
        from hanseek.encoders.registry import load_text_encoder

        if not self.follows:
            return True
        active = locked_active_model(conn)
        if active is None or active == encoder.name:
            return True
        self._encoder = load_text_encoder(self.settings, active)
        return False


def pending_job(db: Database) -> JobStatus | None:
    """The pending re-embedding (at most one) and how far it got; None when there is none."""
    with db.connection() as conn:
        row = conn.execute("SELECT model, dim, from_model, started_at FROM reembed_jobs").fetchone()
        if row is None:
            return None
        model = str(row[0])
        total = conn.execute("SELECT count(*) FROM posts").fetchone()
        todo = conn.execute(
            f"SELECT count(*) {_TODO_FROM}", {"model": model, "cfg": _text_config(_feed_settings())}
        ).fetchone()
        images = sum(len(_image_todo(conn, kind, model)) for kind in ("caption", "labels"))
    n = int(total[0]) if total else 0
    return JobStatus(model, int(row[1]), row[2], row[3], n, n - (int(todo[0]) if todo else 0), images)


def drop_jobs(db: Database, *, keep: str | None = None) -> list[str]:
    """Delete pending jobs (and their staged vectors), except the one for `keep`."""
    with db.connection() as conn:
        rows = conn.execute(
            "DELETE FROM reembed_jobs WHERE model IS DISTINCT FROM %s RETURNING model", (keep,)
        ).fetchall()
    return [str(r[0]) for r in rows]


def has_content(db: Database) -> bool:
    """Whether anything stored was encoded by the text model (posts, image captions or labels)."""
    with db.connection() as conn:
        return content_in(conn)


def content_in(conn: Conn) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM posts) OR EXISTS (SELECT 1 FROM images WHERE caption IS NOT NULL "
        "OR cardinality(tags) > 0 OR jsonb_array_length(auto_labels) > 0)"
    ).fetchone()
    return bool(row and row[0])


# -- staging ----------------------------------------------------------------------------------------
def _stage_posts_batch(
    conn: Conn, encoder: TextEncoder, model: str, fs: FeedSettings, after: str, n: int
) -> tuple[int, str | None]:
    """Encode and stage the next `n` posts (by id, after `after`) that are not staged with their
    current text. Returns (how many, the last id) — (0, None) when none are left."""
    from hanseek.feed.text import post_text

    cfg = _text_config(fs)
    rows = conn.execute(
        f"SELECT p.id, p.title, p.body, p.category, p.community, p.author, {_SOURCE_MD5} AS h "
        f"{_TODO_FROM} AND p.id > %(after)s ORDER BY p.id LIMIT %(n)s",
        {"model": model, "cfg": cfg, "after": after, "n": n},
    ).fetchall()
    if not rows:
        return 0, None
    keys = ("title", "body", "category", "community", "author")
    texts = [post_text(dict(zip(keys, r[1:6], strict=True)), fs.text_fields, fs.max_body_chars) for r in rows]
    vecs = np.asarray(encoder.encode(texts, kind="passage"), dtype=np.float32)
    with conn.cursor() as cur, _job_still_there(model):
        # INSERT … SELECT: a post deleted since it was read is skipped instead of failing the batch.
        cur.executemany(
            "INSERT INTO reembed_staging (model, post_id, source_md5, embedding) "
            "SELECT %s, id, %s, %s FROM posts WHERE id = %s "
            "ON CONFLICT (model, post_id) DO UPDATE SET source_md5 = EXCLUDED.source_md5, "
            "embedding = EXCLUDED.embedding",
            [(model, r[6], vecs[i], r[0]) for i, r in enumerate(rows)],
        )
    conn.execute("UPDATE reembed_jobs SET updated_at = now() WHERE model = %s", (model,))
    return len(rows), str(rows[-1][0])


@contextmanager
def _job_still_there(model: str) -> Iterator[None]:
    try:
        yield
    except psycopg.errors.ForeignKeyViolation as exc:  # reembed_staging.model -> reembed_jobs
        if "reembed_staging_model_fkey" not in str(exc):
            raise
        raise ReembedError(
            f"the re-embedding to {model} was dropped by another command (`models use` or `models "
            "reembed` for another model, or `--no-reembed`)"
        ) from exc


def _image_todo(conn: Conn, kind: str, model: str, redo: bool = False) -> list[int]:
    """Images with a caption/tags (kind caption) or auto labels (kind labels) that have no vector
    in the (kind, model) space yet (`redo`: all of them)."""
    from hanseek.images import repo

    have = (
        "caption IS NOT NULL OR cardinality(tags) > 0"
        if kind == "caption"
        else ("jsonb_array_length(auto_labels) > 0")
    )
    space = repo.find_space(conn, kind, model)  # type: ignore[arg-type]
    if space is None or redo:
        rows = conn.execute(f"SELECT id FROM images WHERE {have} ORDER BY id").fetchall()
    else:
        rows = conn.execute(
            f"SELECT id FROM images i WHERE ({have}) AND NOT EXISTS "
            f"(SELECT 1 FROM {space.table} v WHERE v.image_id = i.id) ORDER BY id"
        ).fetchall()
    return [int(r[0]) for r in rows]


def _encode_images(conn: Conn, encoder: TextEncoder, kind: str, ids: Sequence[int]) -> int:
    """Encode the caption (or label) documents of `ids` into the encoder's space of that kind."""
    from hanseek.images import repo
    from hanseek.images.service import caption_document, labels_document

    space = repo.ensure_space(conn, kind, encoder.name, encoder.dim)  # type: ignore[arg-type]
    rows = repo.get_images(conn, list(ids))
    docs: dict[int, str | None] = {
        i: caption_document(r["caption"], r["tags"] or [])
        if kind == "caption"
        else labels_document(r["auto_labels"] or [])
        for i, r in rows.items()
    }
    keep = [i for i in ids if docs.get(i)]
    if keep:
        vecs = encoder.encode([str(docs[i]) for i in keep], kind="passage")
        return repo.put_vectors(conn, space, keep, np.asarray(vecs, dtype=np.float32))
    return 0


def _stage_images(
    db: Database, encoder: TextEncoder, batch_size: int, progress: Progress | None, redo: bool = False
) -> int:
    """Fill the target model's caption and label spaces for every image that needs them (`redo`:
    encode every image again, for a re-embedding to the model already active)."""
    encoded = 0
    for kind in ("caption", "labels"):
        with db.connection() as conn:
            todo = _image_todo(conn, kind, encoder.name, redo)
        for start in range(0, len(todo), batch_size):
            with db.connection() as conn:
                encoded += _encode_images(conn, encoder, kind, todo[start : start + batch_size])
            if progress:
                progress(f"{kind} images", min(start + batch_size, len(todo)), len(todo))
    return encoded


# -- the job ----------------------------------------------------------------------------------------
def run(
    db: Database,
    settings: Settings,
    model: str,
    *,
    encoder: TextEncoder | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
    after_batch: Callable[[int], None] | None = None,
    feed_settings: FeedSettings | None = None,
) -> ReembedResult:
    """Re-embed posts and image texts with `model` (resuming a pending job for it), then swap.

    `model` must be registered (`models` table). `after_batch(n)` is called after each committed
    staging batch (n = batches so far in this run); an exception there stops the job, which a later
    call resumes."""
    from hanseek.encoders.model_registry import sync_active_pointer
    from hanseek.encoders.registry import load_text_encoder

    started = time.perf_counter()
    fs = feed_settings or _feed_settings()
    with db.connection() as conn:
        if conn.execute("SELECT 1 FROM models WHERE name = %s", (model,)).fetchone() is None:
            raise ReembedError(f"model {model!r} is not registered (see `hanseek models list`)")
    enc = encoder or load_text_encoder(settings, model)
    result = ReembedResult(model)
    with db.connection() as conn:
        check_dim(conn, settings, model, enc.dim)
        result.notes += [
            f"dropped the pending re-embedding to {m}"
            for m in (
                str(r[0])
                for r in conn.execute(
                    "DELETE FROM reembed_jobs WHERE model <> %s RETURNING model", (model,)
                ).fetchall()
            )
        ]
        conn.execute(
            "INSERT INTO reembed_jobs (model, dim, from_model) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (model, enc.dim, active_model(conn) or settings.text_model),
        )
        job = conn.execute("SELECT id FROM reembed_jobs WHERE model = %s", (model,)).fetchone()
        job_id = int(job[0]) if job else 0
        # The model already active: its image spaces are full, but "redo every vector" means them too.
        redo_images = active_model(conn) == model
        cfg = _text_config(fs)
        total = conn.execute("SELECT count(*) FROM posts").fetchone()
        todo = conn.execute(f"SELECT count(*) {_TODO_FROM}", {"model": model, "cfg": cfg}).fetchone()
    n_total, n_todo = int(total[0]) if total else 0, int(todo[0]) if todo else 0
    result.posts_skipped = n_total - n_todo

    try:
        _stage_and_swap(db, enc, model, fs, result, batch_size, progress, after_batch, n_todo, redo_images)
    except ReembedError:
        # The job row goes when a swap to `model` commits: another run of the same re-embedding (or a
        # `models use` of it) finished first. Until session 18 that was reported as "dropped by
        # another command" with exit 2, though the model was active. The job id tells it from a
        # drop also for a redo of the model already active (active before this run began).
        if not _finished_elsewhere(db, model, job_id):
            raise
        result.notes.append(f"another run finished the re-embedding to {model} meanwhile; it is active")
    # After the commit (a crash in between leaves the pointer behind; readers with a database
    # repair it), and what the catalogue says now: another switch may have committed since.
    sync_active_pointer(db, settings)
    result.swapped = True
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _stage_and_swap(
    db: Database,
    enc: TextEncoder,
    model: str,
    fs: FeedSettings,
    result: ReembedResult,
    batch_size: int,
    progress: Callable[[str, int, int], None] | None,
    after_batch: Callable[[int], None] | None,
    n_todo: int,
    redo_images: bool,
) -> None:
    batches = 0
    for _ in range(_MAX_PASSES):
        staged_this_pass, after = 0, ""
        while True:
            with db.connection() as conn:
                n, last = _stage_posts_batch(conn, enc, model, fs, after, batch_size)
            if last is None:
                break
            after = last
            staged_this_pass += n
            result.posts_encoded += n
            batches += 1
            if progress:  # later passes (posts written meanwhile) grow the total
                progress("posts", result.posts_encoded, max(n_todo, result.posts_encoded))
            if after_batch:
                after_batch(batches)
        if staged_this_pass == 0:
            break
    result.images_encoded = _stage_images(db, enc, batch_size, progress, redo_images)

    for attempt in range(3):
        try:
            t_swap = time.perf_counter()
            _swap(db, enc, model, fs, result)
            result.swap_seconds = round(time.perf_counter() - t_swap, 3)
            break
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
            if attempt == 2:
                raise ReembedError(f"the swap kept conflicting with other writers: {exc}") from exc
            log.warning("re-embedding swap: %s; retrying", exc)


def _finished_elsewhere(db: Database, model: str, job_id: int) -> bool:
    """Whether a swap of this run's job, or of a later job to the same model, has made `model`
    active (ids grow, so a later job re-embedded everything after this run began)."""
    with db.connection() as conn:
        if conn.execute("SELECT 1 FROM reembed_jobs WHERE model = %s", (model,)).fetchone():
            return False
        row = conn.execute("SELECT reembed_job FROM models WHERE name = %s AND active", (model,)).fetchone()
        return row is not None and row[0] is not None and int(row[0]) >= job_id


def _swap(db: Database, enc: TextEncoder, model: str, fs: FeedSettings, result: ReembedResult) -> None:
    from hanseek.feed.events import rebuild_profiles

    with db.connection() as conn:
        # Lock order: the switch lock, the catalogue, then posts and images. Writers of posts and
        # images wait until the commit; readers (the feed, search) and event recording go on.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SWITCH_LOCK,))
        conn.execute("SELECT name FROM models ORDER BY name FOR UPDATE")
        conn.execute("LOCK TABLE posts, images IN SHARE ROW EXCLUSIVE MODE")
        job = conn.execute("SELECT id FROM reembed_jobs WHERE model = %s", (model,)).fetchone()
        if job is None:
            raise ReembedError(f"the re-embedding to {model} was dropped by another command")
        phases, t = result.swap_phases, time.perf_counter()

        def lap(name: str) -> None:
            nonlocal t
            now = time.perf_counter()
            phases[name] = round(now - t, 3)
            t = now

        after = ""
        while True:  # whatever was written since the last staging pass
            n, last = _stage_posts_batch(conn, enc, model, fs, after, 256)
            if last is None:
                break
            after, result.posts_encoded = last, result.posts_encoded + n
        for kind in ("caption", "labels"):
            if ids := _image_todo(conn, kind, enc.name):
                result.images_encoded += _encode_images(conn, enc, kind, ids)
        missing = conn.execute(
            f"SELECT count(*) {_TODO_FROM}", {"model": model, "cfg": _text_config(fs)}
        ).fetchone()
        if missing and int(missing[0]):
            raise ReembedError(f"{missing[0]} posts are still not staged under the lock")
        lap("catch_up")
        swapped = conn.execute(
            "UPDATE posts p SET embedding = s.embedding FROM reembed_staging s "
            "WHERE s.model = %s AND s.post_id = p.id AND p.embedding IS DISTINCT FROM s.embedding",
            (model,),
        )
        result.posts_swapped = swapped.rowcount
        lap("post_vectors")
        result.profiles = rebuild_profiles(conn, fs)
        lap("profiles")
        conn.execute("UPDATE models SET active = false WHERE active AND name <> %s", (model,))
        conn.execute("UPDATE models SET active = true, reembed_job = %s WHERE name = %s", (job[0], model))
        conn.execute("DELETE FROM reembed_jobs WHERE model = %s", (model,))
        conn.commit()
        lap("commit")
