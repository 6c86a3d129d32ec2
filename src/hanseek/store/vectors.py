"""Cosine search over `vector(d)` columns with SQL filters: an exact path and an HNSW path.

- `exact_search`: B-tree (or any non-vector) filtering, then the exact distance to every candidate and a
  top-k sort. Guaranteed exact: the distance is computed inside an `OFFSET 0` subquery, which the
  planner can neither flatten nor serve from a vector index, so an HNSW index on the column can never
  answer it approximately. Cost grows with the number of candidates (~µs per row).
- `hnsw_search`: the HNSW index with pgvector's iterative scans, so a selective filter still yields k
  rows; the results are re-sorted because `relaxed_order` may return them slightly out of order.
  Approximate: recall must be measured (see bench/store.py), never assumed.
- `search`: picks one from the planner's estimate of the candidate count (`estimate_count`).

Identifiers are composed with psycopg.sql and every value is bound as a parameter.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

__all__ = [
    "Filters",
    "Hit",
    "SearchResult",
    "choose_path",
    "create_hnsw_index",
    "estimate_count",
    "exact_search",
    "explain_search",
    "hnsw_search",
    "search",
    "validate_query",
]

Conn = psycopg.Connection[Any]
IterativeScan = Literal["off", "relaxed_order", "strict_order"]
Path_ = Literal["exact", "hnsw"]

MAX_K = 1000  # pgvector's ceiling for hnsw.ef_search; also a sane bound for the exact path
DEFAULT_EXACT_MAX_CANDIDATES = 20_000  # ≈ 3 µs per candidate row -> ~60 ms worst case on one core
_OPCLASSES = {"vector_cosine_ops", "halfvec_cosine_ops"}


@dataclass(frozen=True, slots=True)
class Hit:
    id: Any
    similarity: float  # cosine similarity = 1 - cosine distance
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    path: Path_
    estimated_candidates: int


def _ident(name: str) -> sql.Identifier:
    """`table` or `schema.table` as a quoted identifier."""
    parts = name.split(".")
    if not all(parts) or len(parts) > 2:
        raise ValueError(f"bad table or column name {name!r}")
    return sql.Identifier(*parts)


def _plain(value: Any) -> Any:
    # numpy arrays/scalars must not reach psycopg as such: pgvector registers ndarray as `vector`.
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class Filters:
    """An AND of conditions on columns; values are always bound parameters. Methods chain.

    `Filters().any("community_id", [3, 7]).range("created_at", gte=start, lt=end)`
    """

    def __init__(self) -> None:
        self._clauses: list[sql.Composable] = []
        self._params: list[Any] = []

    def _add(self, clause: sql.Composable, *params: Any) -> Filters:
        self._clauses.append(clause)
        self._params.extend(params)
        return self

    def eq(self, column: str, value: Any) -> Filters:
        return self._add(sql.SQL("{} = %s").format(_ident(column)), _plain(value))

    def ne(self, column: str, value: Any) -> Filters:
        return self._add(sql.SQL("{} <> %s").format(_ident(column)), _plain(value))

    def any(self, column: str, values: Iterable[Any]) -> Filters:
        return self._add(sql.SQL("{} = ANY(%s)").format(_ident(column)), [_plain(v) for v in values])

    def not_any(self, column: str, values: Iterable[Any]) -> Filters:
        return self._add(sql.SQL("NOT ({} = ANY(%s))").format(_ident(column)), [_plain(v) for v in values])

    def range(
        self, column: str, *, gte: Any = None, gt: Any = None, lte: Any = None, lt: Any = None
    ) -> Filters:
        col = _ident(column)
        for op, value in ((">=", gte), (">", gt), ("<=", lte), ("<", lt)):
            if value is not None:
                self._add(sql.SQL("{} " + op + " %s").format(col), _plain(value))
        return self

    def is_null(self, column: str, null: bool = True) -> Filters:
        return self._add(sql.SQL("{} IS NULL" if null else "{} IS NOT NULL").format(_ident(column)))

    def raw(self, clause: sql.Composable, *params: Any) -> Filters:
        """Any other condition, e.g. `sql.SQL("tags @> %s")` with its parameters (caller composes safely)."""
        return self._add(clause, *(_plain(p) for p in params))

    def where(self) -> tuple[sql.Composable, list[Any]]:
        """(`WHERE a AND b` or nothing, parameters in order)."""
        if not self._clauses:
            return sql.SQL(""), []
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(self._clauses), list(self._params)

    def __bool__(self) -> bool:
        return bool(self._clauses)


def validate_query(query: Sequence[float] | np.ndarray, dim: int | None = None) -> np.ndarray:
    """A 1-D finite float32 vector with a non-zero norm (cosine is undefined otherwise), else ValueError."""
    try:
        q = np.asarray(query, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"query vector is not numeric: {exc}") from exc
    if q.ndim != 1 or q.size == 0:
        raise ValueError(f"query vector must be 1-D and non-empty, got shape {q.shape}")
    if dim is not None and q.shape[0] != dim:
        raise ValueError(f"query vector has dimension {q.shape[0]}, expected {dim}")
    if not np.isfinite(q).all():
        raise ValueError("query vector contains NaN or Inf")
    norm = float(np.linalg.norm(q))
    if norm == 0.0 or not math.isfinite(norm):
        raise ValueError("query vector has zero (or overflowing) norm; cosine similarity is undefined")
    return q


def _check_k(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an integer in [1, {MAX_K}], got {k!r}")
    return k


def _select_list(id_column: str, columns: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join([_ident(id_column), *(_ident(c) for c in columns)])


def _inner_list(id_column: str, columns: Sequence[str], ties: Sequence[str]) -> sql.Composable:
    """The select list plus the tie columns it lacks, for the ORDER BY of the outer query."""
    return _select_list(id_column, [*columns, *(t for t in ties if t not in (id_column, *columns))])


def _tie_order(id_column: str, ties: Sequence[str]) -> sql.Composable:
    """Distance first; equal distances by the `ties` columns, largest first, then by id."""
    return sql.SQL(", ").join(
        [sql.SQL("distance"), *(_ident(t) + sql.SQL(" DESC") for t in ties), _ident(id_column)]
    )


def _hits(rows: list[tuple[Any, ...]], columns: Sequence[str]) -> list[Hit]:
    out = []
    for row in rows:
        extra = dict(zip(columns, row[1:-1], strict=True))
        out.append(Hit(row[0], 1.0 - float(row[-1]), extra))
    return out


def _run(
    conn: Conn, query: sql.Composed, params: list[Any], *, savepoint: bool = False
) -> list[tuple[Any, ...]]:
    """`savepoint`: the refused statement rolls back alone, and the caller's transaction stays
    usable after the ValueError (until session 18 the exact path's next statement was
    InFailedSqlTransaction); the HNSW path runs in its own rolled-back transaction already."""
    try:
        with conn.transaction() if savepoint else contextlib.nullcontext():
            return conn.execute(query, params).fetchall()
    except pg_errors.DataException as exc:
        if "dimensions" in str(exc):  # "different vector dimensions 384 and 3"
            raise ValueError(f"query vector does not match the column: {exc.diag.message_primary}") from exc
        raise


# Execute with [query, *filter params, k]. OFFSET 0 fences the subquery: no flattening, so the ORDER BY
# below cannot reach an index.
_EXACT = sql.SQL(
    "SELECT {cols}, distance FROM ("
    "SELECT {inner}, {vec} <=> %s AS distance FROM {table}{where} OFFSET 0"
    ") AS candidates ORDER BY {order} LIMIT %s"
)
# Execute with [query, *filter params, query, k].
_HNSW = sql.SQL(
    "WITH nearest AS MATERIALIZED ("
    "SELECT {inner}, {vec} <=> %s AS distance FROM {table}{where} ORDER BY {vec} <=> %s LIMIT %s"
    ") SELECT {cols}, distance FROM nearest ORDER BY {order}"
)


def _statement(
    template: sql.SQL,
    table: str,
    vector_column: str,
    id_column: str,
    columns: Sequence[str],
    filters: Filters | None,
    ties: Sequence[str] = (),
) -> tuple[sql.Composed, list[Any]]:
    """`_EXACT` or `_HNSW` filled in, and the filter parameters."""
    where, params = (filters or Filters()).where()
    stmt = template.format(
        cols=_select_list(id_column, columns),
        inner=_inner_list(id_column, columns, ties),
        vec=_ident(vector_column),
        table=_ident(table),
        where=where,
        order=_tie_order(id_column, ties),
    )
    return stmt, params


def _hnsw_settings(k: int, ef_search: int, iterative_scan: str, max_scan_tuples: int) -> dict[str, str]:
    if iterative_scan not in ("off", "relaxed_order", "strict_order"):
        raise ValueError(f"iterative_scan must be off, relaxed_order or strict_order, not {iterative_scan!r}")
    if max_scan_tuples < 1:
        raise ValueError("max_scan_tuples must be positive")
    return {
        # fewer than k candidates could never fill k results
        "hnsw.ef_search": str(min(max(int(ef_search), k), MAX_K)),
        "hnsw.iterative_scan": iterative_scan,
        "hnsw.max_scan_tuples": str(int(max_scan_tuples)),
        # Make the index scan the only plan without a sort, so a selective filter cannot
        # turn this into the exact path behind the caller's back.
        "enable_seqscan": "off",
        "enable_bitmapscan": "off",
        "enable_sort": "off",
    }


def exact_search(
    conn: Conn,
    table: str,
    query: Sequence[float] | np.ndarray,
    *,
    k: int = 10,
    filters: Filters | None = None,
    vector_column: str = "embedding",
    id_column: str = "id",
    columns: Sequence[str] = (),
    dim: int | None = None,
    ties: Sequence[str] = (),
) -> list[Hit]:
    """Exact top-k by cosine similarity among the rows matching `filters`. Equal similarities are
    ordered by the `ties` columns, largest first, then by id."""
    q = validate_query(query, dim)
    _check_k(k)
    stmt, params = _statement(_EXACT, table, vector_column, id_column, columns, filters, ties)
    return _hits(_run(conn, stmt, [q, *params, k], savepoint=True), columns)


def hnsw_search(
    conn: Conn,
    table: str,
    query: Sequence[float] | np.ndarray,
    *,
    k: int = 10,
    filters: Filters | None = None,
    vector_column: str = "embedding",
    id_column: str = "id",
    columns: Sequence[str] = (),
    dim: int | None = None,
    ef_search: int = 40,
    iterative_scan: IterativeScan = "relaxed_order",
    max_scan_tuples: int = 20_000,
    ties: Sequence[str] = (),
) -> list[Hit]:
    """Approximate top-k through the column's HNSW index (needs `create_hnsw_index` first). Equal
    similarities among the hits are ordered as in `exact_search`.

    Planner settings are changed only inside a savepoint (or transaction) that is rolled back
    afterwards, so nothing leaks into the caller's transaction or the pooled connection.
    """
    q = validate_query(query, dim)
    _check_k(k)
    settings = _hnsw_settings(k, ef_search, iterative_scan, max_scan_tuples)
    stmt, params = _statement(_HNSW, table, vector_column, id_column, columns, filters, ties)
    with conn.transaction(force_rollback=True):
        _set_local(conn, settings)
        rows = _run(conn, stmt, [q, *params, q, k])
    return _hits(rows, columns)


def explain_search(
    conn: Conn,
    table: str,
    query: Sequence[float] | np.ndarray,
    *,
    path: Path_,
    k: int = 10,
    filters: Filters | None = None,
    vector_column: str = "embedding",
    id_column: str = "id",
    columns: Sequence[str] = (),
    ef_search: int = 40,
    iterative_scan: IterativeScan = "relaxed_order",
    max_scan_tuples: int = 20_000,
    analyze: bool = False,
) -> str:
    """The plan PostgreSQL uses for the given path (with its settings), as EXPLAIN text."""
    q = validate_query(query)
    _check_k(k)
    prefix = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN ")
    with conn.transaction(force_rollback=True):
        if path == "exact":
            stmt, params = _statement(_EXACT, table, vector_column, id_column, columns, filters)
            args = [q, *params, k]
        else:
            _set_local(conn, _hnsw_settings(k, ef_search, iterative_scan, max_scan_tuples))
            stmt, params = _statement(_HNSW, table, vector_column, id_column, columns, filters)
            args = [q, *params, q, k]
        rows = conn.execute(prefix + stmt, args).fetchall()
    return "\n".join(str(r[0]) for r in rows)


def _set_local(conn: Conn, settings: dict[str, str]) -> None:
    stmts = [
        sql.SQL("SET LOCAL {} = {}").format(sql.SQL(name), sql.Literal(value))
        for name, value in settings.items()
    ]
    conn.execute(sql.SQL("; ").join(stmts))


def create_hnsw_index(
    conn: Conn,
    table: str,
    column: str = "embedding",
    *,
    name: str | None = None,
    m: int = 16,
    ef_construction: int = 64,
    opclass: str = "vector_cosine_ops",
    maintenance_work_mem: str = "512MB",
) -> str:
    """Create (if absent) an HNSW cosine index on `table(column)`; return its name.

    A graph that fits in maintenance_work_mem builds several times faster than one that spills.
    """
    if opclass not in _OPCLASSES:
        raise ValueError(f"opclass must be one of {sorted(_OPCLASSES)}")
    index = name or f"{table.split('.')[-1]}_{column}_hnsw"
    with conn.transaction():
        _set_local(conn, {"maintenance_work_mem": maintenance_work_mem})
        conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {index} ON {table} USING hnsw ({col} {opclass}) "
                "WITH (m = {m}, ef_construction = {efc})"
            ).format(
                index=sql.Identifier(index),
                table=_ident(table),
                col=_ident(column),
                opclass=sql.SQL(opclass),
                m=sql.Literal(int(m)),
                efc=sql.Literal(int(ef_construction)),
            )
        )
    return index


def estimate_count(conn: Conn, table: str, filters: Filters | None = None) -> int:
    """The planner's row estimate for the filter (uses table statistics; ANALYZE after bulk loads)."""
    where, params = (filters or Filters()).where()
    stmt = sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {table}{where}").format(
        table=_ident(table), where=where
    )
    row = conn.execute(stmt, params).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])  # EXPLAIN's column is text
    return int(plan[0]["Plan"]["Plan Rows"])


def choose_path(
    estimated_candidates: int, *, exact_max_candidates: int = DEFAULT_EXACT_MAX_CANDIDATES
) -> Path_:
    """Exact while the candidate set is small enough to scan; HNSW beyond (where a filter is lax)."""
    return "exact" if estimated_candidates <= exact_max_candidates else "hnsw"


def search(
    conn: Conn,
    table: str,
    query: Sequence[float] | np.ndarray,
    *,
    k: int = 10,
    filters: Filters | None = None,
    vector_column: str = "embedding",
    id_column: str = "id",
    columns: Sequence[str] = (),
    dim: int | None = None,
    exact_max_candidates: int = DEFAULT_EXACT_MAX_CANDIDATES,
    ef_search: int = 100,
    max_scan_tuples: int = 20_000,
) -> SearchResult:
    """Top-k via the exact or the HNSW path, chosen from the estimated candidate count."""
    q = validate_query(query, dim)
    estimated = estimate_count(conn, table, filters)
    path = choose_path(estimated, exact_max_candidates=exact_max_candidates)
    common: dict[str, Any] = dict(
        k=k, filters=filters, vector_column=vector_column, id_column=id_column, columns=columns
    )
    if path == "exact":
        hits = exact_search(conn, table, q, **common)
    else:
        hits = hnsw_search(conn, table, q, ef_search=ef_search, max_scan_tuples=max_scan_tuples, **common)
    return SearchResult(hits, path, estimated)
