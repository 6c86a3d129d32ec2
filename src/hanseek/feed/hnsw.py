"""Rebuild the posts' HNSW index with other graph parameters, without blocking the service.

The migration builds pgvector's defaults (m 16, ef_construction 64): quick to build, but on a large
collection the approximate path's recall is bounded by that graph whatever ef_search is (see
docs/feed.md, Benchmark). A denser graph costs build time and memory once; this swaps it in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

INDEX = "posts_embedding_hnsw_idx"
_NEW = "posts_embedding_hnsw_new"


@dataclass(frozen=True)
class HnswParams:
    m: int
    ef_construction: int


PGVECTOR_DEFAULT = HnswParams(16, 64)  # what an index built without WITH (...) has


def current_params(conn: psycopg.Connection[Any]) -> HnswParams | None:
    """The posts index's build parameters (pgvector's defaults where the index does not set them)."""
    row = conn.execute(
        "SELECT c.reloptions FROM pg_class c WHERE c.relname = %s AND c.relkind = 'i'", (INDEX,)
    ).fetchone()
    if row is None:
        return None
    opts = dict(o.split("=", 1) for o in (row[0] or []))
    d = PGVECTOR_DEFAULT
    return HnswParams(int(opts.get("m", d.m)), int(opts.get("ef_construction", d.ef_construction)))


def rebuild(
    url: str,
    params: HnswParams,
    *,
    maintenance_work_mem: str = "2GB",
    parallel_workers: int = 2,
) -> float:
    """Build the new graph CONCURRENTLY (reads and writes go on), then swap it for the old one in
    one short transaction. Returns the seconds taken. A failed build leaves the old index serving."""
    if not 2 <= params.m <= 100:
        raise ValueError(f"m must be between 2 and 100, got {params.m}")
    if not 4 <= params.ef_construction <= 1000 or params.ef_construction < 2 * params.m:
        raise ValueError(
            f"ef_construction must be between 4 and 1000 and at least 2*m, got {params.ef_construction}"
        )
    started = time.perf_counter()
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction block.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", (maintenance_work_mem,))
        conn.execute(
            "SELECT set_config('max_parallel_maintenance_workers', %s, false)", (str(parallel_workers),)
        )
        # An interrupted earlier rebuild leaves an INVALID index under the new name.
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(_NEW)))
        conn.execute(
            sql.SQL(
                "CREATE INDEX CONCURRENTLY {} ON posts USING hnsw (embedding vector_cosine_ops) "
                "WITH (m = {}, ef_construction = {})"
            ).format(sql.Identifier(_NEW), sql.Literal(params.m), sql.Literal(params.ef_construction))
        )
        with conn.transaction():
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(INDEX)))
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(_NEW), sql.Identifier(INDEX))
            )
    return time.perf_counter() - started
