"""Corpus storage in PostgreSQL: subjects, documents, incremental document frequencies,
dictionaries and keyword lists. Every change is one transaction, so statistics always match the
documents (a failed add leaves nothing behind)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

from hanseek.keywords.scoring import CorpusStats
from hanseek.keywords.terms import EXTRACTOR_VERSION
from hanseek.store.db import Database
from hanseek.text import normalize


def _read_snapshot(conn: psycopg.Connection[Any]) -> None:
    """Make the transaction's reads one snapshot (first statement of the transaction): a subject's
    row and the rows read after it then come from one state of the corpus, never a mix of two."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")


class UnknownSubject(LookupError):
    pass


class StaleStatistics(RuntimeError):
    pass


class SubjectDeleted(StaleStatistics):
    """A write that spans several transactions found its subject deleted (by another request)
    after an earlier transaction of it committed. A StaleStatistics, so that the API answers 409
    (a conflict with another request, not the 404 "create it first") and the CLI one error line."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"subject {subject!r} was deleted by another request during this one")
        self.subject = subject


@dataclass(frozen=True)
class Subject:
    id: int
    name: str
    n_docs: int
    total_terms: int
    floor: float | None
    dictionary_size: int
    keyword_count: int
    updated_at: datetime


@dataclass(frozen=True)
class SubjectContext:
    stats: CorpusStats
    dictionary: dict[str, float]
    keywords: frozenset[str]
    floor: float | None

    @staticmethod
    def empty() -> SubjectContext:
        return SubjectContext(CorpusStats.empty(), {}, frozenset(), None)


@dataclass(frozen=True)
class NewDocument:
    body: str
    terms: Sequence[str]  # term of every occurrence, in order (duplicates kept)
    title: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class StoredDocument:
    id: int
    subject: str
    title: str | None
    source: str | None
    n_terms: int
    created: bool  # False: an identical document was already in the subject
    subject_id: int  # the subject's row: where a later batch of the same request must add to


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    title: str | None
    source: str | None
    n_terms: int
    chars: int
    created_at: datetime


_SUBJECT_COLS = """
    s.id, s.name, s.n_docs, s.total_terms, s.floor, s.updated_at,
    (SELECT count(*) FROM kw_dictionary d WHERE d.subject_id = s.id),
    (SELECT count(*) FROM kw_keywords k WHERE k.subject_id = s.id)
"""


def _subject(row: Sequence[Any]) -> Subject:
    return Subject(
        id=row[0],
        name=row[1],
        n_docs=row[2],
        total_terms=row[3],
        floor=row[4],
        updated_at=row[5],
        dictionary_size=row[6],
        keyword_count=row[7],
    )


def _subject_row(
    conn: psycopg.Connection[Any], subject: str, columns: str = "id", *, for_update: bool = False
) -> tuple[Any, ...]:
    """The subject's row (the given columns of kw_subjects); UnknownSubject when there is none."""
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(f"SELECT {columns} FROM kw_subjects WHERE name = %s{lock}", (subject,)).fetchone()
    if row is None:
        raise UnknownSubject(subject)
    return tuple(row)


class CorpusStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- subjects -----------------------------------------------------------------------------

    def ensure_subject(self, name: str) -> Subject:
        with self.db.connection() as conn:
            sid = self._ensure_subject(conn, name)
            row = conn.execute(
                f"SELECT {_SUBJECT_COLS} FROM kw_subjects s WHERE s.id = %s", (sid,)
            ).fetchone()
        assert row is not None
        return _subject(row)

    def _ensure_subject(self, conn: psycopg.Connection[Any], name: str) -> int:
        row = conn.execute(
            "INSERT INTO kw_subjects (name, extractor_version) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id, extractor_version",
            (name, EXTRACTOR_VERSION),
        ).fetchone()
        assert row is not None
        if row[1] != EXTRACTOR_VERSION:
            raise StaleStatistics(
                f"subject {name!r} was indexed by term extractor v{row[1]}; this is v{EXTRACTOR_VERSION}: "
                "re-add its documents to a new subject"
            )
        return int(row[0])

    def subject(self, name: str) -> Subject:
        with self.db.connection() as conn:
            row = conn.execute(
                f"SELECT {_SUBJECT_COLS} FROM kw_subjects s WHERE s.name = %s", (name,)
            ).fetchone()
        if row is None:
            raise UnknownSubject(name)
        return _subject(row)

    def subjects(self) -> list[Subject]:
        with self.db.connection() as conn:
            rows = conn.execute(f"SELECT {_SUBJECT_COLS} FROM kw_subjects s ORDER BY s.name").fetchall()
        return [_subject(r) for r in rows]

    def delete_subject(self, name: str) -> None:
        with self.db.connection() as conn:
            cur = conn.execute("DELETE FROM kw_subjects WHERE name = %s", (name,))
            if cur.rowcount == 0:
                raise UnknownSubject(name)

    def set_floor(self, name: str, floor: float | None) -> None:
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE kw_subjects SET floor = %s, updated_at = now() WHERE name = %s", (floor, name)
            )
            if cur.rowcount == 0:
                raise UnknownSubject(name)

    # -- documents ----------------------------------------------------------------------------

    def add_documents(
        self, subject: str, docs: Iterable[NewDocument], *, subject_id: int | None = None
    ) -> list[StoredDocument]:
        """Add documents and update the subject's statistics, all in one transaction.

        `subject_id`: a later transaction of one request, after an earlier one created or found the
        subject with that id. Then the subject is never created: if it is gone (a DELETE committed
        in between), SubjectDeleted, instead of a new subject holding only this request's tail."""
        out: list[StoredDocument] = []
        with self.db.connection() as conn:
            if subject_id is None:
                sid = self._ensure_subject(conn, subject)
                # One writer per subject at a time: concurrent adds cannot interleave their counts.
                conn.execute("SELECT 1 FROM kw_subjects WHERE id = %s FOR UPDATE", (sid,))
            else:
                # By id, not name: a subject deleted and created again under the name is another one.
                row = conn.execute("SELECT 1 FROM kw_subjects WHERE id = %s FOR UPDATE", (subject_id,))
                if row.fetchone() is None:
                    raise SubjectDeleted(subject)
                sid = subject_id
            for doc in docs:
                out.append(self._add_one(conn, sid, subject, doc))
        return out

    def _add_one(
        self, conn: psycopg.Connection[Any], sid: int, subject: str, doc: NewDocument
    ) -> StoredDocument:
        # Identity is the normalised text (NFC, no zero-width characters, trimmed), which is what the
        # statistics count: an NFD copy or a trailing space is the same document. Rows stored
        # before session 14 carry the digest of the raw body, so that one is looked up too. The
        # subject row is locked by the caller, so nothing can slip in between lookup and insert.
        digest = hashlib.sha256(normalize(doc.body).encode("utf-8")).digest()
        raw = hashlib.sha256(doc.body.encode("utf-8")).digest()
        existing = conn.execute(
            "SELECT id, title, source, n_terms FROM kw_documents WHERE subject_id = %s AND sha256 = ANY(%s) "
            "ORDER BY id LIMIT 1",
            (sid, [digest, raw]),
        ).fetchone()
        if existing is not None:
            return StoredDocument(
                existing[0], subject, existing[1], existing[2], existing[3], created=False, subject_id=sid
            )
        row = conn.execute(
            "INSERT INTO kw_documents (subject_id, title, source, body, sha256, n_terms) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (sid, doc.title, doc.source, doc.body, digest, len(doc.terms)),
        ).fetchone()
        assert row is not None
        doc_id = int(row[0])
        counts = Counter(doc.terms)
        if counts:
            terms = sorted(counts)
            conn.execute(
                "INSERT INTO kw_doc_terms (doc_id, term, tf) "
                "SELECT %s, t, c FROM unnest(%s::text[], %s::int[]) AS u(t, c)",
                (doc_id, terms, [counts[t] for t in terms]),
            )
            conn.execute(
                "INSERT INTO kw_term_df (subject_id, term, df) SELECT %s, t, 1 FROM unnest(%s::text[]) AS t "
                "ON CONFLICT (subject_id, term) DO UPDATE SET df = kw_term_df.df + 1",
                (sid, terms),
            )
        conn.execute(
            "UPDATE kw_subjects SET n_docs = n_docs + 1, total_terms = total_terms + %s, updated_at = now() "
            "WHERE id = %s",
            (len(doc.terms), sid),
        )
        return StoredDocument(
            doc_id, subject, doc.title, doc.source, len(doc.terms), created=True, subject_id=sid
        )

    def remove_document(self, subject: str, doc_id: int) -> bool:
        """Remove a document and subtract its counts; False if it is not in the subject."""
        with self.db.connection() as conn:
            srow = _subject_row(conn, subject, for_update=True)
            sid = srow[0]
            drow = conn.execute(
                "SELECT n_terms FROM kw_documents WHERE id = %s AND subject_id = %s", (doc_id, sid)
            ).fetchone()
            if drow is None:
                return False
            # Terms only this document contained disappear; the others lose one document.
            conn.execute(
                "DELETE FROM kw_term_df t USING kw_doc_terms d "
                "WHERE d.doc_id = %s AND t.subject_id = %s AND t.term = d.term AND t.df = 1",
                (doc_id, sid),
            )
            conn.execute(
                "UPDATE kw_term_df t SET df = t.df - 1 FROM kw_doc_terms d "
                "WHERE d.doc_id = %s AND t.subject_id = %s AND t.term = d.term",
                (doc_id, sid),
            )
            conn.execute("DELETE FROM kw_documents WHERE id = %s", (doc_id,))
            conn.execute(
                "UPDATE kw_subjects SET n_docs = n_docs - 1, total_terms = total_terms - %s, "
                "updated_at = now() WHERE id = %s",
                (drow[0], sid),
            )
        return True

    def documents(
        self, subject: str, *, limit: int = 100, offset: int = 0, after: int | None = None
    ) -> list[DocumentInfo]:
        """In the order they were added (by id); `after`: the last id of the previous page, so a
        document removed meanwhile does not move the next page (with `offset` one went unlisted)."""
        with self.db.connection() as conn:
            # One snapshot: a subject deleted between the two statements answered an empty list,
            # a state it was never in, instead of all its documents or UnknownSubject.
            _read_snapshot(conn)
            srow = _subject_row(conn, subject)
            rows = conn.execute(
                "SELECT id, title, source, n_terms, length(body), created_at FROM kw_documents "
                "WHERE subject_id = %s AND id > %s ORDER BY id LIMIT %s OFFSET %s",
                (srow[0], after if after is not None else 0, limit, offset),
            ).fetchall()
        return [DocumentInfo(*r) for r in rows]

    # -- statistics ---------------------------------------------------------------------------

    def context(self, subject: str, terms: Iterable[str]) -> SubjectContext:
        """Everything scoring a page needs from the subject, for the page's terms, from one snapshot
        of a single connection: N, total length, df, dictionary weights, keywords, floor."""
        wanted = sorted(set(terms))
        with self.db.connection() as conn:
            # One snapshot for both statements: under READ COMMITTED an add committing between them
            # gave N and total length from before it and df from after (df > N), statistics the
            # corpus never had, and weights of no state it was ever in.
            _read_snapshot(conn)
            srow = _subject_row(conn, subject, "id, n_docs, total_terms, floor")
            sid = srow[0]
            rows = conn.execute(
                "SELECT t.term, df.df, d.weight, k.term IS NOT NULL "
                "FROM unnest(%s::text[]) AS t(term) "
                "LEFT JOIN kw_term_df df ON df.subject_id = %s AND df.term = t.term "
                "LEFT JOIN kw_dictionary d ON d.subject_id = %s AND d.term = t.term "
                "LEFT JOIN kw_keywords k ON k.subject_id = %s AND k.term = t.term "
                "WHERE df.df IS NOT NULL OR d.weight IS NOT NULL OR k.term IS NOT NULL",
                (wanted, sid, sid, sid),
            ).fetchall()
        return SubjectContext(
            stats=CorpusStats(int(srow[1]), int(srow[2]), {t: int(df) for t, df, _, _ in rows if df}),
            dictionary={t: float(w) for t, _, w, _ in rows if w is not None},
            keywords=frozenset(t for t, _, _, k in rows if k),
            floor=srow[3],
        )

    def all_stats(self, subject: str) -> CorpusStats:
        """The subject's complete document-frequency table (for exports and checks)."""
        with self.db.connection() as conn:
            _read_snapshot(conn)
            srow = _subject_row(conn, subject, "id, n_docs, total_terms")
            rows = conn.execute(
                "SELECT term, df FROM kw_term_df WHERE subject_id = %s", (srow[0],)
            ).fetchall()
        return CorpusStats(int(srow[1]), int(srow[2]), {t: int(d) for t, d in rows})

    # -- dictionary and keywords --------------------------------------------------------------

    def set_dictionary(self, subject: str, weights: Mapping[str, float], *, replace: bool = True) -> int:
        with self.db.connection() as conn:
            sid = self._ensure_subject(conn, subject)
            if replace:
                conn.execute("DELETE FROM kw_dictionary WHERE subject_id = %s", (sid,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO kw_dictionary (subject_id, term, weight) VALUES (%s, %s, %s) "
                    "ON CONFLICT (subject_id, term) DO UPDATE SET weight = EXCLUDED.weight",
                    [(sid, t, float(w)) for t, w in sorted(weights.items())],
                )
            conn.execute("UPDATE kw_subjects SET updated_at = now() WHERE id = %s", (sid,))
        return len(weights)

    def _subject_terms(
        self, table: Literal["kw_dictionary", "kw_keywords"], subject: str, terms: Iterable[str] | None
    ) -> list[tuple[Any, ...]]:
        """(term, …) rows of a per-subject term table (`kw_dictionary`, `kw_keywords`), all or the
        given terms only."""
        select = "SELECT term, weight" if table == "kw_dictionary" else "SELECT term"
        with self.db.connection() as conn:
            _read_snapshot(conn)
            srow = _subject_row(conn, subject)
            query = f"{select} FROM {table} WHERE subject_id = %s"
            if terms is None:
                return conn.execute(query, (srow[0],)).fetchall()
            return conn.execute(query + " AND term = ANY(%s)", (srow[0], sorted(set(terms)))).fetchall()

    def dictionary(self, subject: str, terms: Iterable[str] | None = None) -> dict[str, float]:
        return {t: float(w) for t, w in self._subject_terms("kw_dictionary", subject, terms)}

    def set_keywords(
        self, subject: str, words: Iterable[str], *, replace: bool = True, floor: float | None = None
    ) -> int:
        """Store the keyword list and, when given, the subject's floor, in one transaction."""
        unique = sorted(set(words))
        with self.db.connection() as conn:
            sid = self._ensure_subject(conn, subject)
            if floor is not None:
                conn.execute("UPDATE kw_subjects SET floor = %s WHERE id = %s", (floor, sid))
            if replace:
                conn.execute("DELETE FROM kw_keywords WHERE subject_id = %s", (sid,))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO kw_keywords (subject_id, term) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [(sid, t) for t in unique],
                )
            conn.execute("UPDATE kw_subjects SET updated_at = now() WHERE id = %s", (sid,))
        return len(unique)

    def keywords(self, subject: str, terms: Iterable[str] | None = None) -> frozenset[str]:
        return frozenset(r[0] for r in self._subject_terms("kw_keywords", subject, terms))
