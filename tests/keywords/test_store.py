"""Corpus statistics in the real embedded PostgreSQL: incremental, transactional, exact."""

import threading
import unicodedata
import uuid
from typing import Any

import psycopg
import pytest

from hanseek.keywords.store import CorpusStore, NewDocument, UnknownSubject


def subject_name() -> str:
    return f"과목-{uuid.uuid4().hex[:8]}"


def doc(terms: str, body: str | None = None) -> NewDocument:
    words = terms.split()
    return NewDocument(body=body or f"{terms} {uuid.uuid4().hex}", terms=words)


def recomputed_df(db: Any, subject: str) -> dict[str, int]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT t.term, count(*) FROM kw_doc_terms t JOIN kw_documents d ON d.id = t.doc_id "
            "JOIN kw_subjects s ON s.id = d.subject_id WHERE s.name = %s GROUP BY t.term",
            (subject,),
        ).fetchall()
    return {t: int(c) for t, c in rows}


def test_add_and_remove_update_df_incrementally(db: Any) -> None:
    store, name = CorpusStore(db), subject_name()
    added = store.add_documents(name, [doc("사과 배"), doc("사과 포도"), doc("사과 배 포도 포도")])
    stats = store.all_stats(name)
    assert (stats.n_docs, stats.total_terms) == (3, 8)
    assert stats.df == {"사과": 3, "배": 2, "포도": 2}
    assert stats.df == recomputed_df(db, name)

    assert store.remove_document(name, added[2].id)
    stats = store.all_stats(name)
    assert (stats.n_docs, stats.total_terms) == (2, 4)
    assert stats.df == {"사과": 2, "배": 1, "포도": 1} == recomputed_df(db, name)
    assert store.remove_document(name, added[0].id)
    assert store.all_stats(name).df == {"사과": 1, "포도": 1}  # 배 is gone, not left at df 0
    assert not store.remove_document(name, added[0].id)  # already removed
    ctx = store.context(name, ["사과", "배", "없는말"])
    assert ctx.stats.df == {"사과": 1} and ctx.stats.n_docs == 1


def test_identical_document_is_stored_once(db: Any) -> None:
    store, name = CorpusStore(db), subject_name()
    first = store.add_documents(name, [NewDocument("같은 문서", ["문서"])])
    again = store.add_documents(name, [NewDocument("같은 문서", ["문서"])])
    assert first[0].created and not again[0].created and first[0].id == again[0].id
    assert store.all_stats(name).n_docs == 1
    # The same text decomposed (NFD), with a zero-width space or a trailing blank: still one document.
    body = "빗살무늬토기를 만들었다"
    variants = [body, unicodedata.normalize("NFD", body), body + " ", "\u200b" + body]
    stored = [store.add_documents(name, [NewDocument(v, ["빗살무늬토기"])])[0] for v in variants]
    assert [d.created for d in stored] == [True, False, False, False]
    assert store.all_stats(name).n_docs == 2 and store.all_stats(name).df["빗살무늬토기"] == 1


def test_a_document_stored_under_its_raw_digest_is_still_found(db: Any) -> None:
    """Rows from before session 14 carry the SHA-256 of the raw body, not of the normalised text."""
    import hashlib

    store, name = CorpusStore(db), subject_name()
    body = "  옛날에 저장된 문서  "
    first = store.add_documents(name, [NewDocument(body, ["문서"])])[0]
    with db.connection() as conn:  # as an older version stored it
        conn.execute(
            "UPDATE kw_documents SET sha256 = %s WHERE id = %s",
            (hashlib.sha256(body.encode()).digest(), first.id),
        )
    again = store.add_documents(name, [NewDocument(body, ["문서"])])[0]
    assert not again.created and again.id == first.id


def test_failed_add_leaves_nothing_behind(db: Any) -> None:
    store, name = CorpusStore(db), subject_name()
    store.add_documents(name, [doc("사과 배")])
    # PostgreSQL text cannot hold NUL: the second document fails after the first was inserted.
    with pytest.raises(psycopg.Error):
        store.add_documents(name, [doc("포도"), NewDocument("bad\x00doc", ["배"])])
    stats = store.all_stats(name)
    assert stats.n_docs == 1 and stats.df == {"사과": 1, "배": 1}


def test_concurrent_adds_keep_exact_counts(db: Any) -> None:
    store, name = CorpusStore(db), subject_name()
    store.ensure_subject(name)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(10):
                store.add_documents(name, [doc(f"공통 단어{k}-{i}")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stats = store.all_stats(name)
    assert stats.n_docs == 40 and stats.df["공통"] == 40
    assert stats.df == recomputed_df(db, name)


def test_dictionary_keywords_floor_and_subjects(db: Any) -> None:
    store, name = CorpusStore(db), subject_name()
    store.set_dictionary(name, {"뗀석기": 2.0, "토기": 1.0})
    store.set_dictionary(name, {"고인돌": 3.0}, replace=False)
    assert store.dictionary(name) == {"뗀석기": 2.0, "토기": 1.0, "고인돌": 3.0}
    store.set_keywords(name, ["뗀석기", "움집", "뗀석기"])
    store.set_floor(name, 0.7)
    ctx = store.context(name, ["뗀석기", "고인돌", "사냥"])
    assert ctx.dictionary == {"뗀석기": 2.0, "고인돌": 3.0}
    assert ctx.keywords == frozenset({"뗀석기"}) and ctx.floor == pytest.approx(0.7)
    info = store.subject(name)
    assert (info.dictionary_size, info.keyword_count) == (3, 2)
    assert name in {s.name for s in store.subjects()}
    store.delete_subject(name)
    with pytest.raises(UnknownSubject):
        store.subject(name)
    with pytest.raises(UnknownSubject):
        store.context(name, ["x"])


def test_a_later_batch_never_creates_its_subject_again(db: Any) -> None:
    """A later transaction of one add (`subject_id` from the first) adds to that row or fails: a
    subject deleted meanwhile, or deleted and created again under its name, is not written to."""
    from hanseek.keywords.store import SubjectDeleted

    store, name = CorpusStore(db), subject_name()
    first = store.add_documents(name, [doc("사과 배")])
    sid = first[0].subject_id
    assert store.add_documents(name, [doc("포도")], subject_id=sid)[0].subject_id == sid
    assert store.all_stats(name).n_docs == 2
    store.delete_subject(name)
    with pytest.raises(SubjectDeleted, match="deleted by another request"):
        store.add_documents(name, [doc("수박")], subject_id=sid)
    with pytest.raises(UnknownSubject):
        store.subject(name)
    store.ensure_subject(name)  # another request creates a new subject of that name
    with pytest.raises(SubjectDeleted):
        store.add_documents(name, [doc("수박")], subject_id=sid)
    assert store.subject(name).n_docs == 0


def test_context_reads_one_snapshot(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`context` read the subject row (N, total length) and the df rows in two statements under READ
    COMMITTED: an add committing between them gave df > N, statistics the corpus never had."""
    from hanseek.keywords import store as kwstore

    store, name = CorpusStore(db), subject_name()
    store.add_documents(name, [NewDocument("양성자 중성자", ["양성자", "중성자"])])
    real_row = kwstore._subject_row
    reader = threading.current_thread()

    def add_in_between(conn: Any, subject: str, columns: str = "id", *, for_update: bool = False) -> Any:
        row = real_row(conn, subject, columns, for_update=for_update)
        if threading.current_thread() is reader:  # another request's add commits now
            t = threading.Thread(
                target=store.add_documents, args=(name, [NewDocument("양성자 전자", ["양성자", "전자"])])
            )
            t.start()
            t.join(30)
            assert not t.is_alive()
        return row

    monkeypatch.setattr(kwstore, "_subject_row", add_in_between)
    ctx = store.context(name, ["양성자", "전자", "중성자"])
    monkeypatch.setattr(kwstore, "_subject_row", real_row)
    assert store.all_stats(name).n_docs == 2  # the add did commit
    # Before the add (what the first statement saw), never a mix of before and after.
    assert (ctx.stats.n_docs, ctx.stats.total_terms, ctx.stats.df) == (1, 2, {"양성자": 1, "중성자": 1})
