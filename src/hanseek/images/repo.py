"""SQL for the image collection: rows, vector spaces (one table each) and filtered vector search."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from hanseek.store import vectors
from hanseek.store.vectors import Filters

Conn = psycopg.Connection[Any]
SearchPath = Literal["auto", "exact", "hnsw"]
SpaceKind = Literal["image", "caption", "labels"]

# Serialises space creation across processes (CREATE TABLE IF NOT EXISTS alone can race); "hsimgspc".
_SPACE_LOCK = 0x6873696D67737063
_FILE_LOCK_NS = 0x68736669  # first key of the two-key per-file locks ("hsfi"; its own key space)

IMAGE_COLUMNS = (
    "id, sha256, format, mime, ext, bytes, width, height, source_name, caption, tags, auto_labels, created_at"
)


@dataclass(frozen=True, slots=True)
class Space:
    id: int
    name: str
    kind: str
    model: str
    dim: int

    @property
    def table(self) -> str:
        return f"image_vec_{self.id}"  # built from an integer id: always a safe identifier


@dataclass(frozen=True, slots=True)
class ImageFilters:
    tags: tuple[str, ...] = ()  # the image must carry all of these
    created_from: datetime | None = None
    created_to: datetime | None = None
    exclude_ids: tuple[int, ...] = ()

    def to_store(self) -> Filters:
        f = Filters()
        conds: list[sql.Composable] = []
        params: list[Any] = []
        if self.tags:
            conds.append(sql.SQL("tags @> %s::text[]"))
            params.append(list(self.tags))
        if self.created_from is not None:
            conds.append(sql.SQL("created_at >= %s"))
            params.append(self.created_from)
        if self.created_to is not None:
            conds.append(sql.SQL("created_at < %s"))
            params.append(self.created_to)
        if conds:
            f.raw(
                sql.SQL("image_id IN (SELECT id FROM images WHERE ")
                + sql.SQL(" AND ").join(conds)
                + sql.SQL(")"),
                *params,
            )
        if self.exclude_ids:
            f.not_any("image_id", list(self.exclude_ids))
        return f


def ensure_space(conn: Conn, kind: SpaceKind, model: str, dim: int) -> Space:
    """The space for (kind, model), creating its vector table and HNSW index the first time."""
    name = f"{kind}:{model}"
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SPACE_LOCK,))
        row = conn.execute(
            "INSERT INTO image_spaces (name, kind, model, dim) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id, dim",
            (name, kind, model, dim),
        ).fetchone()
        assert row is not None
        space = Space(int(row[0]), name, kind, model, int(row[1]))
        if space.dim != dim:
            raise ValueError(f"space {name} holds {space.dim}-d vectors but the encoder gives {dim}-d")
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {t} ("
                "image_id bigint PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE, "
                "embedding vector({d}) NOT NULL)"
            ).format(t=sql.Identifier(space.table), d=sql.Literal(dim))
        )
        vectors.create_hnsw_index(conn, space.table)
    return space


def find_space(conn: Conn, kind: SpaceKind, model: str) -> Space | None:
    row = conn.execute(
        "SELECT id, name, kind, model, dim FROM image_spaces WHERE name = %s", (f"{kind}:{model}",)
    ).fetchone()
    return Space(int(row[0]), row[1], row[2], row[3], int(row[4])) if row else None


def existing_by_sha(conn: Conn, shas: Iterable[str]) -> dict[str, int]:
    rows = conn.execute("SELECT sha256, id FROM images WHERE sha256 = ANY(%s)", (list(shas),)).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def insert_image(conn: Conn, values: dict[str, Any]) -> int | None:
    """Insert one image row; None when another writer stored the same sha256 first."""
    cols = list(values)
    stmt = sql.SQL(
        "INSERT INTO images ({cols}) VALUES ({vals}) ON CONFLICT (sha256) DO NOTHING RETURNING id"
    ).format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        vals=sql.SQL(", ").join(sql.Placeholder() * len(cols)),
    )
    row = conn.execute(stmt, [values[c] for c in cols]).fetchone()
    return int(row[0]) if row else None


def put_vectors(conn: Conn, space: Space, ids: Sequence[int], vecs: np.ndarray) -> int:
    """Store the vectors of the images that still exist; returns how many were stored. The rows are
    key-share locked first, so an image deleted while its vector was computed is passed over instead
    of failing the batch on the foreign key."""
    if not ids:
        return 0
    present = {
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM images WHERE id = ANY(%s) FOR KEY SHARE", ([int(i) for i in ids],)
        ).fetchall()
    }
    rows = [
        (int(i), np.asarray(v, dtype=np.float32)) for i, v in zip(ids, vecs, strict=True) if int(i) in present
    ]
    if not rows:
        return 0
    stmt = sql.SQL(
        "INSERT INTO {t} (image_id, embedding) VALUES (%s, %s) "
        "ON CONFLICT (image_id) DO UPDATE SET embedding = EXCLUDED.embedding"
    ).format(t=sql.Identifier(space.table))
    with conn.cursor() as cur:
        cur.executemany(stmt, rows)
    return len(rows)


def get_vector(conn: Conn, space: Space, image_id: int) -> np.ndarray | None:
    row = conn.execute(
        sql.SQL("SELECT embedding FROM {t} WHERE image_id = %s").format(t=sql.Identifier(space.table)),
        (image_id,),
    ).fetchone()
    if row is None:
        return None
    value = row[0]
    # pgvector's psycopg adapter returns a Vector object (or ndarray, depending on its version)
    return np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)


def ids_without_vectors(conn: Conn, space: Space) -> list[int]:
    rows = conn.execute(
        sql.SQL(
            "SELECT id FROM images i "
            "WHERE NOT EXISTS (SELECT 1 FROM {t} v WHERE v.image_id = i.id) ORDER BY id"
        ).format(t=sql.Identifier(space.table))
    ).fetchall()
    return [int(r[0]) for r in rows]


def search_space(
    conn: Conn,
    space: Space,
    query: np.ndarray,
    *,
    k: int,
    filters: ImageFilters,
    path: SearchPath = "auto",
    exact_max_candidates: int = vectors.DEFAULT_EXACT_MAX_CANDIDATES,
    ef_search: int = 100,
) -> tuple[list[tuple[int, float]], str]:
    """Top-k (image id, cosine similarity) in one space, and the path used."""
    f = filters.to_store()
    common: dict[str, Any] = dict(k=k, filters=f, id_column="image_id", dim=space.dim)
    if path == "exact":
        hits = vectors.exact_search(conn, space.table, query, **common)
        used = "exact"
    elif path == "hnsw":
        hits = vectors.hnsw_search(conn, space.table, query, ef_search=ef_search, **common)
        used = "hnsw"
    else:
        res = vectors.search(
            conn, space.table, query, exact_max_candidates=exact_max_candidates, ef_search=ef_search, **common
        )
        hits, used = res.hits, res.path
    return [(int(h.id), h.similarity) for h in hits], used


def get_images(conn: Conn, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE id = ANY(%s)", (list(ids),)).fetchall()
    return {int(r["id"]): r for r in rows}


def list_images(
    conn: Conn,
    *,
    limit: int,
    offset: int = 0,
    tags: Sequence[str] = (),
    after: tuple[datetime, int] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Newest first (`created_at`, then `id`); `after` is the last row of the previous page: the
    page starts right below it, wherever deletes and adds since then moved it (an offset would skip
    one row per delete above it)."""
    conds: list[str] = []
    params: list[Any] = []
    if tags:
        conds.append("tags @> %s::text[]")
        params.append(list(tags))
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    page_conds, page_params = list(conds), list(params)
    if after is not None:
        page_conds.append("(created_at, id) < (%s, %s)")
        page_params += [after[0], after[1]]
    page_where = f"WHERE {' AND '.join(page_conds)}" if page_conds else ""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {IMAGE_COLUMNS} FROM images {page_where} "
            "ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
            [*page_params, limit, offset],
        ).fetchall()
        total_row = cur.execute(f"SELECT count(*) AS n FROM images {where}", params).fetchone()
    return rows, int(total_row["n"]) if total_row else 0


def lock_files(conn: Conn, shas: Iterable[str]) -> None:
    """Hold the content-addressed files of `shas` until the transaction ends (sorted: one lock order).

    An add writes the files and inserts the row under it; a delete removes the files under it only if
    no row names them any more. Without it, a delete's unlink could follow an add of the same bytes
    that found the files still there, leaving a row without its file."""
    for sha in sorted(set(shas)):
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_FILE_LOCK_NS, sha))


def delete_image(conn: Conn, image_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("DELETE FROM images WHERE id = %s RETURNING sha256, ext", (image_id,)).fetchone()


def count_images(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM images").fetchone()
    return int(row[0]) if row else 0
