"""Bulk loading with binary COPY, and upserts through a COPY-filled staging table.

Binary COPY skips per-row statements and text parsing (vectors included: pgvector's binary format),
which makes it the fastest way into PostgreSQL from Python. COPY cannot upsert, so re-ingesting ids
goes through a temporary table and one `INSERT ... ON CONFLICT DO UPDATE`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["column_type_oids", "copy_rows", "upsert_rows"]

Conn = psycopg.Connection[Any]


def _ident(name: str) -> sql.Identifier:
    parts = name.split(".")
    if not all(parts) or len(parts) > 2:
        raise ValueError(f"bad table name {name!r}")
    return sql.Identifier(*parts)


def column_type_oids(conn: Conn, table: str, columns: Sequence[str]) -> list[int]:
    """Type oids of `columns` in `table` (domains resolved to their base type), in the given order."""
    regclass = _ident(table).as_string(conn)
    rows = conn.execute(
        "SELECT a.attname, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (regclass,),
    ).fetchall()
    oids = {name: int(oid) for name, oid in rows}
    missing = [c for c in columns if c not in oids]
    if missing:
        raise ValueError(f"table {table} has no column(s) {', '.join(missing)}")
    return [oids[c] for c in columns]


def copy_rows(
    conn: Conn,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    type_oids: Sequence[int] | None = None,
) -> int:
    """Append `rows` to `table(columns)` with one binary COPY; return the number of rows written.

    Vector columns take numpy arrays (or lists of floats). Runs in the caller's transaction, so a
    failure part-way leaves nothing behind once the transaction rolls back.
    """
    if not columns:
        raise ValueError("copy_rows needs at least one column")
    oids = list(type_oids) if type_oids is not None else column_type_oids(conn, table, columns)
    stmt = sql.SQL("COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)").format(
        table=_ident(table), cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    n = 0
    width = len(columns)
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        copy.set_types(oids)
        for row in rows:
            if len(row) != width:
                raise ValueError(f"row {n} has {len(row)} values for {width} columns")
            copy.write_row(row)
            n += 1
    return n


def upsert_rows(
    conn: Conn,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    key_columns: Sequence[str],
    update_columns: Sequence[str] | None = None,
) -> int:
    """Insert rows, updating `update_columns` (default: all non-key columns) where the key exists.

    `key_columns` must match a unique index or constraint of `table`. If a key repeats within `rows`,
    the last occurrence wins (ON CONFLICT alone would fail: a row cannot be updated twice). With no
    update columns, existing rows are left as they are. Returns the number of rows inserted or updated.
    """
    if not key_columns or any(k not in columns for k in key_columns):
        raise ValueError("key_columns must be a non-empty subset of columns")
    updates = [c for c in columns if c not in key_columns] if update_columns is None else list(update_columns)
    if any(c not in columns for c in updates):
        raise ValueError("update_columns must be a subset of columns")
    oids = column_type_oids(conn, table, columns)
    stage = f"_stage_{uuid.uuid4().hex[:16]}"
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    keys = sql.SQL(", ").join(sql.Identifier(c) for c in key_columns)
    with conn.transaction():
        conn.execute(
            sql.SQL("CREATE TEMP TABLE {stage} AS SELECT {cols} FROM {table} WITH NO DATA").format(
                stage=sql.Identifier(stage), cols=cols, table=_ident(table)
            )
        )
        # Created inside the transaction: a failure rolls the staging table back with everything else.
        copy_rows(conn, stage, columns, rows, type_oids=oids)
        action: sql.Composable
        if updates:
            action = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(
                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in updates
            )
        else:
            action = sql.SQL("DO NOTHING")
        # A freshly COPYed heap is in insertion order, so the highest ctid is the last occurrence.
        cur = conn.execute(
            sql.SQL(
                "INSERT INTO {table} ({cols}) "
                "SELECT DISTINCT ON ({keys}) {cols} FROM {stage} ORDER BY {keys}, ctid DESC "
                "ON CONFLICT ({keys}) {action}"
            ).format(table=_ident(table), cols=cols, keys=keys, stage=sql.Identifier(stage), action=action)
        )
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(stage)))
        return cur.rowcount
