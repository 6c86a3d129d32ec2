"""`ImageService`: ingest (decode, deduplicate, encode, store), search and retrieval of images.

Vector spaces used (see the 0005 migration):
- `image:<image model>`: image vectors (image→image; text→image too when the model is CLIP-style);
- `caption:<text model>`: the caption and tags of an image, embedded as one passage;
- `labels:<text model>`: the image model's own class names for the image (EfficientNet's ImageNet
  labels), so that text→image works for images nobody described.
Text search asks every text-capable space and keeps, per image, its best score and where it came from.
"""

from __future__ import annotations

import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np
from psycopg.errors import UndefinedTable

from hanseek.encoders.image_base import ImageEncoder, ImageLabeler
from hanseek.images import repo
from hanseek.images.config import ImageSettings
from hanseek.images.decode import DecodedImage, ImageRejected, configure_pillow, decode_image
from hanseek.images.repo import ImageFilters, SearchPath, Space
from hanseek.images.storage import THUMB_MIME, MediaStore
from hanseek.text.normalize import is_dropped
from hanseek.text.storable import unstorable

if TYPE_CHECKING:
    from hanseek.api.state import AppState
    from hanseek.config import Settings
    from hanseek.encoders.base import TextEncoder
    from hanseek.store.db import Database

log = logging.getLogger("hanseek.images")

TextSource = Literal["caption", "labels", "clip"]
MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_CAPTION_CHARS = 2_000
MAX_QUERY_CHARS = 1_000
MAX_K = 200
# Files younger than this are never swept as orphans: an add writes them before its row commits.
ORPHAN_MIN_AGE_S = 15 * 60.0
_TAG_SPACE = re.compile(r"\s+")
_TEXT_KINDS: tuple[Literal["caption", "labels"], ...] = ("caption", "labels")


def list_cursor(row: dict[str, Any]) -> str:
    """Where a list page ended: the row's `created_at` (ISO 8601, microseconds kept) and id."""
    # UTC with a "Z": a "+00:00" offset would come back as " 00:00" from a query string left unencoded.
    stamp = row["created_at"].astimezone(UTC).isoformat().replace("+00:00", "Z")
    return f"{stamp}~{int(row['id'])}"


def parse_list_cursor(cursor: str) -> tuple[datetime, int]:
    stamp, sep, ident = cursor.rpartition("~")
    try:
        if not sep:
            raise ValueError
        at, image_id = datetime.fromisoformat(stamp), int(ident)
    except ValueError:
        raise ImageServiceError(
            f"after {cursor[:80]!r} is not a list cursor (use next_after from the previous page)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at, image_id


class ImageServiceError(ValueError):
    """Bad input to the service (the API turns it into a 422)."""


class ImageNotFound(LookupError):
    pass


@dataclass(slots=True)
class Upload:
    data: bytes
    filename: str | None = None  # display only; never used as a path
    caption: str | None = None
    tags: Sequence[str] = ()


@dataclass(slots=True)
class AddResult:
    index: int
    filename: str | None
    status: Literal["added", "duplicate", "rejected"]
    id: int | None = None
    sha256: str | None = None
    reason: str | None = None
    message: str | None = None
    near_duplicate_of: int | None = None
    near_duplicate_score: float | None = None


@dataclass(slots=True)
class SearchHit:
    image: dict[str, Any]
    score: float
    source: str  # which space matched: image | caption | labels | clip


@dataclass(slots=True)
class OpenFile:
    """A stored file, already open (the caller closes it), with what its response headers need."""

    file: BinaryIO
    mime: str
    size: int
    mtime: float

    def chunks(self, size: int = 64 * 1024, *, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """`length` bytes from `start` (by default all, up to the size seen when it was opened), then
        the file is closed."""
        try:
            self.file.seek(start)
            left = self.size - start if length is None else length
            while left > 0 and (chunk := self.file.read(min(size, left))):
                left -= len(chunk)
                yield chunk
        finally:
            self.file.close()


@dataclass(slots=True)
class _TextVectors:
    """An upload's caption and label vectors (by position in the batch) and the one text encoder
    they all came from, which also names the spaces they go into."""

    encoder: TextEncoder | None
    captions: dict[int, np.ndarray]
    labels: dict[int, np.ndarray]

    def replace(
        self, encoder: TextEncoder, captions: dict[int, np.ndarray], labels: dict[int, np.ndarray]
    ) -> None:
        self.encoder, self.captions, self.labels = encoder, captions, labels


@dataclass(slots=True)
class SearchOutcome:
    hits: list[SearchHit]
    paths: dict[str, str] = field(default_factory=dict)  # space name -> exact | hnsw


def normalize_tags(tags: Sequence[str]) -> list[str]:
    out: list[str] = []
    for raw in tags:
        tag = _TAG_SPACE.sub(" ", unicodedata.normalize("NFC", str(raw))).strip().lower()
        # Cards show tags as "#sky" and people type them that way: kept, "#sky" showed as "##sky"
        # and a filter for "sky" never found it. Adding and filtering both come through here.
        tag = tag.lstrip("#").lstrip()
        if not tag:
            continue
        if why := unstorable(tag):
            raise ImageServiceError(f"tag {tag[:20]!r} {why}")
        if len(tag) > MAX_TAG_CHARS:
            raise ImageServiceError(f"tag {tag[:20]!r}… is longer than {MAX_TAG_CHARS} characters")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ImageServiceError(f"at most {MAX_TAGS} tags per image")
    return out


def split_tags(text: str | None) -> list[str]:
    """Tags from a comma-separated form/CLI field."""
    return [t for t in (text or "").split(",") if t.strip()]


def filter_tags(values: Sequence[str] | None) -> list[str]:
    """The tags a filter requires, from repeated values that may each be a comma-separated list
    (`tag=a,b&tag=c` in the API, `--tag a,b --tag c` in the CLI)."""
    return [t for value in values or [] for t in split_tags(value)]


def caption_document(caption: str | None, tags: Sequence[str]) -> str | None:
    parts = []
    if caption and caption.strip():
        parts.append(caption.strip())
    if tags:
        parts.append(", ".join(tags))
    return ". ".join(parts) if parts else None


def labels_document(labels: Sequence[tuple[str, float]] | Sequence[Sequence[Any]]) -> str | None:
    names = [str(item[0]) for item in labels]
    return "a photo of " + ", ".join(names) if names else None


class ImageService:
    def __init__(
        self,
        db: Database,
        media_dir: Path,
        config: ImageSettings,
        encoder: ImageEncoder,
        text_encoder: Callable[[], TextEncoder] | None,
        text_encoder_is_active: Callable[[Any, TextEncoder], bool] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.encoder = encoder
        self._text_encoder_factory = text_encoder
        # Checked in the upload's transaction (AppState.text_encoder_is_active): False when the
        # text model was switched since the captions were encoded; they are encoded again.
        self._text_encoder_is_active = text_encoder_is_active
        self.media = MediaStore(media_dir, config.thumbnail_px)
        configure_pillow(config.max_pixels)
        with db.connection() as conn:
            self.image_space = repo.ensure_space(conn, "image", encoder.name, encoder.dim)

    @classmethod
    def from_state(cls, state: AppState) -> ImageService:
        return cls.build(
            state.db,
            state.settings,
            text_encoder=lambda: state.text_encoder,
            text_encoder_is_active=state.text_encoder_is_active,
        )

    @classmethod
    def build(
        cls,
        db: Database,
        settings: Settings,
        *,
        text_encoder: Callable[[], TextEncoder] | None = None,
        text_encoder_is_active: Callable[[Any, TextEncoder], bool] | None = None,
        config: ImageSettings | None = None,
        encoder: ImageEncoder | None = None,
    ) -> ImageService:
        from hanseek.encoders.image_registry import load_image_encoder

        cfg = config or ImageSettings()
        enc = encoder or load_image_encoder(cfg.model, text_tower=cfg.text_tower)
        if text_encoder is None:
            # Loaded once, on first use; follows a `hanseek models use` switch like the server does.
            from hanseek.encoders.reembed import ActiveEncoder

            active = ActiveEncoder(settings, db)  # the catalogue, not a pointer a crash left stale
            text_encoder, text_encoder_is_active = active.get, active.is_active

        return cls(db, settings.media_dir, cfg, enc, text_encoder, text_encoder_is_active)

    # -- helpers -------------------------------------------------------------------------------
    @property
    def text_encoder(self) -> TextEncoder | None:
        if self._text_encoder_factory is None:
            return None
        return self._text_encoder_factory()

    @staticmethod
    def _text_space(conn: repo.Conn, kind: Literal["caption", "labels"], te: TextEncoder) -> Space:
        """The (kind, te) space, looked up by name in `conn` on every use rather than cached: a
        space's table can be dropped (`train simcse --overwrite` of an inactive model) and created
        again under a new id, and a cached id then named a table that no longer existed."""
        space = repo.find_space(conn, kind, te.name)
        if space is None or space.dim != te.dim:  # ensure_space refuses a dimension mismatch
            space = repo.ensure_space(conn, kind, te.name, te.dim)
        return space

    def _labeler(self) -> ImageLabeler | None:
        if not self.config.auto_labels:
            return None
        return self.encoder if isinstance(self.encoder, ImageLabeler) else None

    # -- ingest --------------------------------------------------------------------------------
    def add(self, uploads: Sequence[Upload]) -> list[AddResult]:
        """Store each acceptable upload once; every file gets its own result, in input order.

        Rejected files (not an image, corrupt, too many pixels, bad tags) do not stop the others.
        All rows of one call commit together, after their files are on disk."""
        if len(uploads) > self.config.max_batch_files:
            raise ImageServiceError(f"at most {self.config.max_batch_files} files per request")
        results: list[AddResult] = []
        accepted: list[tuple[AddResult, DecodedImage, Upload, list[str]]] = []
        seen: dict[str, AddResult] = {}
        for i, up in enumerate(uploads):
            res = AddResult(index=i, filename=_display_name(up.filename), status="rejected")
            results.append(res)
            try:
                tags = normalize_tags(up.tags)
                if up.caption and len(up.caption) > MAX_CAPTION_CHARS:
                    raise ImageServiceError(f"the caption is longer than {MAX_CAPTION_CHARS} characters")
                if up.caption and (why := unstorable(up.caption)):
                    raise ImageServiceError(f"the caption {why}")
                decoded = decode_image(
                    up.data, max_pixels=self.config.max_pixels, max_bytes=self.config.max_file_bytes
                )
            except ImageRejected as exc:
                res.reason, res.message = exc.reason, exc.message
                continue
            except ImageServiceError as exc:
                res.reason, res.message = "invalid_metadata", str(exc)
                continue
            res.sha256 = decoded.sha256
            first = seen.get(decoded.sha256)
            if first is not None:
                res.status, res.reason = "duplicate", "same_file_in_batch"
                res.message = f"Same file as upload #{first.index} in this request."
                continue
            seen[decoded.sha256] = res
            accepted.append((res, decoded, up, tags))

        if accepted:
            with self.db.connection() as conn:
                existing = repo.existing_by_sha(conn, [d.sha256 for _, d, _, _ in accepted])
            fresh, stored = [], []
            for res, decoded, up, tags in accepted:
                if decoded.sha256 in existing:
                    res.status, res.id, res.reason = "duplicate", existing[decoded.sha256], "already_stored"
                    res.message = f"This file is already stored as image {res.id}."
                    stored.append((res, decoded, up))
                else:
                    fresh.append((res, decoded, up, tags))
            if stored:
                self._refill_files(stored)
            if fresh:
                self._store(fresh)
        # Same-batch duplicates point at the id their first copy got.
        for res in results:
            if res.reason == "same_file_in_batch" and res.sha256:
                res.id = seen[res.sha256].id
        return results

    def _refill_files(self, items: list[tuple[AddResult, DecodedImage, Upload]]) -> None:
        """Write back the files of stored images that have lost them: a backup restored without its
        media archive, or files deleted by hand. The row stays as it is; adding the same bytes again
        is how the restore's warning says to get the files back, and until session 18 it only
        answered "duplicate" and left them missing."""
        lacking = [
            item
            for item in items
            if not self.media.original_path(item[1].sha256, item[1].ext).exists()
            or not self.media.thumbnail_path(item[1].sha256).exists()
        ]
        if not lacking:
            return
        with self.db.connection() as conn:
            # Under the files' locks, with the rows read again: a delete of these images that commits
            # first removes the row, and then there is nothing to refill (gc would remove the files).
            repo.lock_files(conn, [d.sha256 for _, d, _ in lacking])
            still = repo.existing_by_sha(conn, [d.sha256 for _, d, _ in lacking])
            for res, d, up in lacking:
                if d.sha256 not in still:
                    continue
                if not self.media.original_path(d.sha256, d.ext).exists():
                    self.media.save_original(d.sha256, d.ext, up.data)
                if not self.media.thumbnail_path(d.sha256).exists():
                    self.media.save_thumbnail(d.sha256, d.image)
                res.message = (
                    f"This file is already stored as image {res.id}; its missing files were written again."
                )

    def _store(self, items: list[tuple[AddResult, DecodedImage, Upload, list[str]]]) -> None:
        images = [d.image for _, d, _, _ in items]
        labeler = self._labeler()
        if labeler is not None:
            image_vecs, labels = labeler.encode_and_label(
                images, self.config.label_top_k, self.config.label_min_prob
            )
        else:
            image_vecs, labels = self.encoder.encode_images(images), [[] for _ in items]
        cap_docs = [caption_document(up.caption, tags) for _, _, up, tags in items]
        lab_docs = [labels_document(lab) for lab in labels]
        # Read once: on a server this is AppState's encoder, which a background poll swaps when the
        # text model is switched. Reading it again later (for the spaces, the encoding, the active
        # check) could mix two models: one model's vectors in the other's space, or a check that
        # passes for a model the vectors did not come from.
        te = self.text_encoder
        texts = _TextVectors(te, self._encode_docs(te, cap_docs), self._encode_docs(te, lab_docs))
        near = self._near_duplicates(image_vecs)
        written: list[tuple[str, Path]] = []  # (sha256, path) of the files this call created
        try:
            for attempt in range(2):
                try:
                    self._write_rows(items, image_vecs, labels, cap_docs, lab_docs, texts, written)
                    break
                except UndefinedTable:
                    # A caption/labels space dropped between its lookup and the insert: the whole
                    # transaction rolled back, and the next lookup finds (or makes) the live one.
                    if attempt:
                        raise
        except BaseException:
            # The rows rolled back: the files written for them would be orphans.
            self._remove_orphans(written)
            raise
        if stored := [r for r, _, _, _ in items if r.status == "added"]:
            log.info("stored %d image(s)", len(stored))
        for i, ((res, _, _, _), hit) in enumerate(zip(items, near, strict=True)):
            if res.status != "added":
                continue
            # The search above saw only images stored before this batch: the batch's earlier photos
            # count too, as if the photos had been sent one by one (a folder's edited copies).
            for j, (earlier, _, _, _) in enumerate(items[:i]):
                score = float(image_vecs[i] @ image_vecs[j])
                close = score >= self.config.near_duplicate_score
                if earlier.id is not None and close and (hit is None or score > hit[1]):
                    hit = (earlier.id, round(score, 4))
            if hit is not None:
                res.near_duplicate_of, res.near_duplicate_score = hit

    def _write_rows(
        self,
        items: list[tuple[AddResult, DecodedImage, Upload, list[str]]],
        image_vecs: np.ndarray,
        labels: Sequence[Sequence[tuple[str, float]]],
        cap_docs: list[str | None],
        lab_docs: list[str | None],
        texts: _TextVectors,
        written: list[tuple[str, Path]],
    ) -> None:
        with self.db.connection() as conn:
            # Files and rows together, under the files' locks (a delete of the same bytes waits).
            repo.lock_files(conn, [d.sha256 for _, d, _, _ in items])
            for _, d, up, _ in items:
                original = self.media.original_path(d.sha256, d.ext)
                thumb = self.media.thumbnail_path(d.sha256)
                new_original, new_thumb = not original.exists(), not thumb.exists()
                self.media.save_original(d.sha256, d.ext, up.data)
                if new_original:
                    written.append((d.sha256, original))
                self.media.save_thumbnail(d.sha256, d.image)
                if new_thumb:
                    written.append((d.sha256, thumb))
            check = self._text_encoder_is_active
            if texts.encoder is not None and check is not None and not check(conn, texts.encoder):
                # `hanseek models use` switched the text model since: its spaces, its vectors. The
                # check loaded the new model and holds the switch lock (shared) until this commits,
                # so the model read now stays the active one; checked again to be sure of that.
                te = self.text_encoder
                if te is None or not check(conn, te):
                    from hanseek.encoders.base import EncoderError

                    raise EncoderError("the active text model changed while the images were stored; retry")
                texts.replace(te, self._encode_docs(te, cap_docs), self._encode_docs(te, lab_docs))
            ids: list[int | None] = []
            for (res, d, up, tags), lab in zip(items, labels, strict=True):
                new_id = repo.insert_image(
                    conn,
                    {
                        "sha256": d.sha256,
                        "format": d.format,
                        "mime": d.mime,
                        "ext": d.ext,
                        "bytes": d.bytes,
                        "width": d.width,
                        "height": d.height,
                        "source_name": res.filename,
                        "caption": (up.caption or "").strip() or None,
                        "tags": tags,
                        "auto_labels": _jsonb([[name, p] for name, p in lab]),
                    },
                )
                ids.append(new_id)
                if new_id is None:  # a concurrent request stored the same file first
                    res.status, res.reason = "duplicate", "already_stored"
                    res.id = repo.existing_by_sha(conn, [d.sha256]).get(d.sha256)
                    res.message = (
                        f"This file was stored as image {res.id} by a concurrent request."
                        if res.id is not None
                        else "This file was stored by a concurrent request."
                    )
                else:
                    res.status, res.id = "added", new_id
            rows = [i for i, new_id in enumerate(ids) if new_id is not None]
            stored_ids = [ids[i] for i in rows]
            repo.put_vectors(conn, self.image_space, stored_ids, image_vecs[rows])  # type: ignore[arg-type]
            if texts.encoder is None:
                return
            # Spaces named after the encoder the vectors came from; looked up after the image rows
            # are inserted, so that a space this creates (the space lock) is taken in the same order
            # as by a re-embedding's swap, which locks `images` first.
            for kind, vecs in zip(_TEXT_KINDS, (texts.captions, texts.labels), strict=True):
                space = self._text_space(conn, kind, texts.encoder)
                sel = [i for i in rows if i in vecs]
                repo.put_vectors(
                    conn,
                    space,
                    [ids[i] for i in sel],  # type: ignore[misc]
                    np.stack([vecs[i] for i in sel]) if sel else np.zeros((0, space.dim), np.float32),
                )

    def _remove_orphans(self, written: Sequence[tuple[str, Path]]) -> None:
        """Remove files this call wrote for rows that never committed. Under the files' locks, and
        only where no row has the same bytes: another request may have stored them meanwhile."""
        if not written:
            return
        shas = {sha for sha, _ in written}
        try:
            with self.db.connection() as conn:
                repo.lock_files(conn, shas)
                kept = repo.existing_by_sha(conn, shas)
                for sha, path in written:
                    if sha not in kept:
                        path.unlink(missing_ok=True)
        except Exception:  # the failure that brought us here is the one to report
            log.exception("could not remove the files of %d image(s) that were not stored", len(shas))

    @staticmethod
    def _encode_docs(te: TextEncoder | None, docs: Sequence[str | None]) -> dict[int, np.ndarray]:
        idx = [i for i, d in enumerate(docs) if d]
        if te is None or not idx:
            return {}
        vecs = te.encode([docs[i] for i in idx], kind="passage")  # type: ignore[misc]
        return {i: np.asarray(v, dtype=np.float32) for i, v in zip(idx, vecs, strict=True)}

    def _near_duplicates(self, vecs: np.ndarray) -> list[tuple[int, float] | None]:
        out: list[tuple[int, float] | None] = []
        with self.db.connection() as conn:
            for v in vecs:
                hits, _ = repo.search_space(
                    conn,
                    self.image_space,
                    v,
                    k=1,
                    filters=ImageFilters(),
                    path="auto",
                    exact_max_candidates=self.config.exact_max_candidates,
                    ef_search=self.config.ef_search,
                )
                if hits and hits[0][1] >= self.config.near_duplicate_score:
                    out.append((hits[0][0], round(hits[0][1], 4)))
                else:
                    out.append(None)
        return out

    # -- search --------------------------------------------------------------------------------
    def search_text(
        self,
        query: str,
        *,
        k: int = 20,
        min_score: float | None = None,
        filters: ImageFilters | None = None,
        path: SearchPath = "auto",
        sources: Sequence[TextSource] | None = None,
    ) -> SearchOutcome:
        # Control and invisible format characters dropped first (as the sentiment API does): until
        # session 18 `q=%00` searched with the encoder's vector of nothing and answered 200.
        q = "".join(ch for ch in unicodedata.normalize("NFC", query or "") if not is_dropped(ch)).strip()
        if not q:
            raise ImageServiceError("the query is empty (no visible characters)")
        if len(q) > MAX_QUERY_CHARS:
            raise ImageServiceError(f"the query is longer than {MAX_QUERY_CHARS} characters")
        k = _check_k(k)
        wanted = set(sources or ("caption", "labels", "clip"))
        filters = filters or ImageFilters()
        te = self.text_encoder  # once: the query vector and the spaces must come from one model
        kinds = [kind for kind in _TEXT_KINDS if kind in wanted] if te is not None else []
        tq = None
        if te is not None and kinds:
            tq = np.asarray(te.encode([q], kind="query")[0], dtype=np.float32)
        clip = self.encoder.encode_texts([q])[0] if self.encoder.supports_text and "clip" in wanted else None
        if tq is None and clip is None:
            raise ImageServiceError("no text-searchable space is available for this image model")
        for attempt in range(2):
            runs: list[tuple[Space, np.ndarray, str]] = []
            if te is not None and tq is not None:
                with self.db.connection() as conn:
                    runs += [(self._text_space(conn, kind, te), tq, kind) for kind in kinds]
            if clip is not None:
                runs.append((self.image_space, clip, "clip"))
            try:
                return self._fuse(runs, k=k, min_score=min_score, filters=filters, path=path)
            except UndefinedTable:
                if attempt:  # dropped between the lookup and the search: look it up once more
                    raise
        raise AssertionError("unreachable")

    def search_image(
        self,
        data: bytes,
        *,
        k: int = 20,
        min_score: float | None = None,
        filters: ImageFilters | None = None,
        path: SearchPath = "auto",
    ) -> SearchOutcome:
        decoded = decode_image(data, max_pixels=self.config.max_pixels, max_bytes=self.config.max_file_bytes)
        vec = self.encoder.encode_images([decoded.image])[0]
        return self._fuse(
            [(self.image_space, vec, "image")],
            k=_check_k(k),
            min_score=min_score,
            filters=filters or ImageFilters(),
            path=path,
        )

    def similar(
        self,
        image_id: int,
        *,
        k: int = 20,
        min_score: float | None = None,
        filters: ImageFilters | None = None,
        path: SearchPath = "auto",
    ) -> SearchOutcome:
        with self.db.connection() as conn:
            vec = repo.get_vector(conn, self.image_space, image_id)
            if vec is None:
                if not repo.get_images(conn, [image_id]):
                    raise ImageNotFound(f"image {image_id} does not exist")
                raise ImageServiceError(
                    f"image {image_id} has no vector for {self.encoder.name}; run `hanseek images reindex`"
                )
        base = filters or ImageFilters()
        f = ImageFilters(base.tags, base.created_from, base.created_to, (*base.exclude_ids, image_id))
        return self._fuse(
            [(self.image_space, vec, "image")], k=_check_k(k), min_score=min_score, filters=f, path=path
        )

    def _fuse(
        self,
        runs: Sequence[tuple[Space, np.ndarray, str]],
        *,
        k: int,
        min_score: float | None,
        filters: ImageFilters,
        path: SearchPath,
    ) -> SearchOutcome:
        best: dict[int, tuple[float, str]] = {}
        paths: dict[str, str] = {}
        with self.db.connection() as conn:
            for space, vec, source in runs:
                hits, used = repo.search_space(
                    conn,
                    space,
                    vec,
                    k=k,
                    filters=filters,
                    path=path,
                    exact_max_candidates=self.config.exact_max_candidates,
                    ef_search=self.config.ef_search,
                )
                paths[space.name] = used
                for image_id, score in hits:
                    if image_id not in best or score > best[image_id][0]:
                        best[image_id] = (score, source)
            ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))
            if min_score is not None:
                ranked = [kv for kv in ranked if kv[1][0] >= min_score]
            ranked = ranked[:k]
            rows = repo.get_images(conn, [i for i, _ in ranked])
        found = [SearchHit(rows[i], round(score, 6), source) for i, (score, source) in ranked if i in rows]
        return SearchOutcome(found, paths)

    # -- retrieval -----------------------------------------------------------------------------
    def get(self, image_id: int) -> dict[str, Any]:
        with self.db.connection() as conn:
            row = repo.get_images(conn, [image_id]).get(image_id)
        if row is None:
            raise ImageNotFound(f"image {image_id} does not exist")
        return row

    def list(
        self, *, limit: int = 50, offset: int = 0, tags: Sequence[str] = (), after: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """`after`: a page's `list_cursor` of its last row; the next page follows it."""
        key = parse_list_cursor(after) if after is not None else None
        with self.db.connection() as conn:
            return repo.list_images(conn, limit=limit, offset=offset, tags=normalize_tags(tags), after=key)

    def file(self, image_id: int, variant: Literal["original", "thumbnail"]) -> tuple[Path, str]:
        path, mime = self._file_path(image_id, variant)
        if not path.is_file():
            raise ImageNotFound(_missing(image_id, variant))
        return path, mime

    def open_file(self, image_id: int, variant: Literal["original", "thumbnail"]) -> OpenFile:
        """The file opened now, for a response sent later. A delete that unlinks it meanwhile
        leaves the open file readable to its end; a path handed over instead could be gone (500)
        or vanish mid-body (a truncated 200) by the time the response reads it."""
        path, mime = self._file_path(image_id, variant)
        try:
            fh = path.open("rb")
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ImageNotFound(_missing(image_id, variant)) from exc
        try:
            st = os.fstat(fh.fileno())
        except BaseException:
            fh.close()
            raise
        return OpenFile(fh, mime, st.st_size, st.st_mtime)

    def _file_path(self, image_id: int, variant: Literal["original", "thumbnail"]) -> tuple[Path, str]:
        row = self.get(image_id)
        if variant == "thumbnail":
            return self.media.thumbnail_path(row["sha256"]), THUMB_MIME
        return self.media.original_path(row["sha256"], row["ext"]), row["mime"]

    def delete(self, image_id: int) -> None:
        with self.db.connection() as conn:
            row = repo.delete_image(conn, image_id)
        if row is None:
            raise ImageNotFound(f"image {image_id} does not exist")
        with self.db.connection() as conn:
            repo.lock_files(conn, [row["sha256"]])
            if not repo.existing_by_sha(conn, [row["sha256"]]):  # the same bytes may have been added again
                self.media.delete(row["sha256"], row["ext"])

    def reindex(
        self,
        progress: Callable[[int, int], None] | None = None,
        batch: int = 16,
        on_skip: Callable[[int, str], None] | None = None,
    ) -> int:
        """Encode stored images that have no vector in the current image space (after a model change).
        Returns how many were encoded. An image whose file is missing or unreadable is skipped (told
        to `on_skip` and logged) rather than stopping the run; one deleted meanwhile is passed over."""
        with self.db.connection() as conn:
            todo = repo.ids_without_vectors(conn, self.image_space)
        done = encoded = 0
        for start in range(0, len(todo), batch):
            ids, images = [], []
            for image_id in todo[start : start + batch]:
                try:
                    row = self.get(image_id)
                    data = self.media.original_path(row["sha256"], row["ext"]).read_bytes()
                    images.append(decode_image(data, max_pixels=self.config.max_pixels).image)
                except ImageNotFound:
                    continue  # deleted since the list was taken
                except (OSError, ImageRejected) as exc:
                    reason = f"its file cannot be read: {exc}"
                    log.warning("reindex: image %s skipped, %s", image_id, reason)
                    if on_skip:
                        on_skip(image_id, reason)
                    continue
                ids.append(image_id)
            if ids:
                vecs = self.encoder.encode_images(images)
                with self.db.connection() as conn:
                    encoded += repo.put_vectors(conn, self.image_space, ids, vecs)
            done = min(start + batch, len(todo))
            if progress:
                progress(done, len(todo))
        return encoded

    def sweep_orphans(self, *, min_age_s: float = ORPHAN_MIN_AGE_S, dry_run: bool = False) -> Sequence[Path]:
        """Remove media files that no image row names, and return them: what a process killed between
        writing an add's files and its commit, or between a delete's commit and its unlink, leaves,
        and the temporaries of writes killed midway (`.tmp-` files; kept until session 18).

        A file younger than `min_age_s` is left alone (an add writes its files before its row
        commits), and each file is removed under its lock (`repo.lock_files`, as adds and deletes
        take it) after its row is looked for again, so a file an add is storing right now is kept."""
        cutoff = time.time() - min_age_s
        by_sha: dict[str, list[Path]] = {}
        for sha, path in self.media.stored_files():
            mtime = _mtime(path)
            if mtime is not None and mtime < cutoff:
                by_sha.setdefault(sha, []).append(path)
        removed: list[Path] = []
        shas = sorted(by_sha)
        for start in range(0, len(shas), 500):
            batch = shas[start : start + 500]
            with self.db.connection() as conn:
                kept = repo.existing_by_sha(conn, batch)
            todo = [sha for sha in batch if sha not in kept]
            if not todo:
                continue
            # One short transaction per batch: an add of these bytes waits at most that long.
            with self.db.connection() as conn:
                repo.lock_files(conn, todo)
                kept = repo.existing_by_sha(conn, todo)
                for sha in todo:
                    if sha in kept:
                        continue
                    for path in by_sha[sha]:
                        mtime = _mtime(path)  # re-read: removed, or written again, meanwhile
                        if mtime is None or mtime >= cutoff:
                            continue
                        if not dry_run:
                            path.unlink(missing_ok=True)
                        removed.append(path)
        # A write's temporary lives for milliseconds; one older than the cutoff is a killed writer's.
        for path in self.media.temporaries():
            mtime = _mtime(path)
            if mtime is not None and mtime < cutoff:
                if not dry_run:
                    path.unlink(missing_ok=True)
                removed.append(path)
        if removed and not dry_run:
            log.info("removed %d media file(s) that no image row named", len(removed))
        return removed

    def count(self) -> int:
        with self.db.connection() as conn:
            return repo.count_images(conn)

    def close(self) -> None:
        pass


def _missing(image_id: int, variant: str) -> str:
    return f"the {variant} file of image {image_id} is missing from the media directory"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise ImageServiceError(f"k must be between 1 and {MAX_K}")
    return k


def _display_name(name: str | None) -> str | None:
    if not name:
        return None
    # Keep only the last path component and printable characters: it is shown, never opened.
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in base if ch.isprintable())[:255]
    return base or None


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)
