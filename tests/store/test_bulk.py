"""Binary COPY and staged upserts on the real server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb

from hanseek.store.bulk import copy_rows, upsert_rows
from hanseek.store.db import Database

COLS = ["id", "name", "score", "created_at", "meta", "embedding"]


@pytest.fixture()
def table(db: Database) -> Iterator[str]:
    name = "t_bulk"
    with db.connection() as conn:
        conn.execute(
            f"CREATE TABLE {name} (id bigint PRIMARY KEY, name text, score real, created_at timestamptz, "
            "meta jsonb, embedding vector(8), untouched text DEFAULT 'default')"
        )
    yield name
    with db.connection() as conn:
        conn.execute(f"DROP TABLE {name}")


def _rows(ids: range, rng: np.random.Generator, tag: str = "") -> list[tuple]:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    return [
        (
            i,
            f"이름{i}{tag}",
            float(i) / 2,
            t0 + timedelta(minutes=i),
            Jsonb({"i": i, "tag": tag}),
            rng.standard_normal(8).astype(np.float32),
        )
        for i in ids
    ]


def test_copy_rows_round_trip(db: Database, table: str) -> None:
    rng = np.random.default_rng(0)
    rows = _rows(range(2000), rng)
    with db.connection() as conn:
        assert copy_rows(conn, table, COLS, iter(rows)) == 2000
    with db.connection() as conn:
        got = conn.execute(f"SELECT {', '.join(COLS)}, untouched FROM {table} ORDER BY id").fetchall()
    assert len(got) == 2000
    for want, row in zip(rows, got, strict=True):
        assert row[:4] == want[:4]
        assert row[4] == want[4].obj
        np.testing.assert_array_equal(row[5].to_numpy(), want[5])
        assert row[6] == "default"


def test_copy_rows_is_all_or_nothing(db: Database, table: str) -> None:
    rng = np.random.default_rng(1)
    rows = _rows(range(10), rng)
    bad = list(rows[5])
    bad[5] = np.full(8, np.nan, dtype=np.float32)  # pgvector rejects NaN
    rows[5] = tuple(bad)
    with pytest.raises(psycopg.errors.DataException), db.connection() as conn:
        copy_rows(conn, table, COLS, rows)
    with db.connection() as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_copy_rows_validates_shape_and_columns(db: Database, table: str) -> None:
    with pytest.raises(ValueError, match="row 0 has 2 values"), db.connection() as conn:
        copy_rows(conn, table, ["id", "name", "score"], [(1, "x")])
    with pytest.raises(ValueError, match="no column"), db.connection() as conn:
        copy_rows(conn, table, ["id", "nope"], [(1, 2)])


def test_upsert_updates_inserts_and_last_duplicate_wins(db: Database, table: str) -> None:
    rng = np.random.default_rng(2)
    with db.connection() as conn:
        copy_rows(conn, table, COLS, _rows(range(5), rng))
    update = _rows(range(3, 8), rng, tag="v2") + _rows(range(7, 8), rng, tag="v3")  # id 7 twice
    with db.connection() as conn:
        assert upsert_rows(conn, table, COLS, update, key_columns=["id"]) == 5
    with db.connection() as conn:
        got = dict(conn.execute(f"SELECT id, name FROM {table}").fetchall())
        emb7 = conn.execute(f"SELECT embedding FROM {table} WHERE id = 7").fetchone()
        temps = conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE '_stage_%'").fetchone()
    assert got == {
        0: "이름0",
        1: "이름1",
        2: "이름2",
        3: "이름3v2",
        4: "이름4v2",
        5: "이름5v2",
        6: "이름6v2",
        7: "이름7v3",
    }
    assert emb7 is not None
    np.testing.assert_array_equal(emb7[0].to_numpy(), update[-1][5])
    assert temps == (0,)


def test_upsert_partial_update_and_do_nothing(db: Database, table: str) -> None:
    rng = np.random.default_rng(3)
    with db.connection() as conn:
        copy_rows(conn, table, COLS, _rows(range(3), rng))
        upsert_rows(
            conn,
            table,
            ["id", "name", "score"],
            [(1, "renamed", 99.0), (9, "new", 1.0)],
            key_columns=["id"],
            update_columns=["name"],
        )
        upsert_rows(
            conn,
            table,
            ["id", "name"],
            [(2, "ignored"), (10, "fresh")],
            key_columns=["id"],
            update_columns=[],
        )
    with db.connection() as conn:
        got = {r[0]: r[1:] for r in conn.execute(f"SELECT id, name, score FROM {table}").fetchall()}
    assert got[1] == ("renamed", 0.5)  # score not in update_columns: kept
    assert got[9] == ("new", 1.0)
    assert got[2] == ("이름2", 1.0)
    assert got[10] == ("fresh", None)


def test_upsert_rolls_back_on_error(db: Database, table: str) -> None:
    rng = np.random.default_rng(4)
    with db.connection() as conn:
        copy_rows(conn, table, COLS, _rows(range(3), rng))
    rows = _rows(range(2, 6), rng, tag="x")
    bad = list(rows[-1])
    bad[5] = np.zeros(3, dtype=np.float32)  # wrong dimension
    rows[-1] = tuple(bad)
    with pytest.raises(psycopg.errors.DataException), db.connection() as conn:
        upsert_rows(conn, table, COLS, rows, key_columns=["id"])
    with db.connection() as conn:
        assert conn.execute(f"SELECT count(*), max(name) FROM {table}").fetchone() == (3, "이름2")


def test_upsert_argument_checks(db: Database, table: str) -> None:
    with db.connection() as conn:
        with pytest.raises(ValueError, match="key_columns"):
            upsert_rows(conn, table, ["id", "name"], [], key_columns=["score"])
        with pytest.raises(ValueError, match="update_columns"):
            upsert_rows(conn, table, ["id", "name"], [], key_columns=["id"], update_columns=["score"])
