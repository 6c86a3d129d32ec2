from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hanseek.train.corpus import pairs_from_file, texts_from_file, texts_from_posts


def test_texts_from_file(tmp_path: Path) -> None:
    p = tmp_path / "t.txt"
    p.write_text("\ufeff첫 번째  문장\n\n짧\n첫 번째 문장\n두 번째 문장\n", encoding="utf-8")
    assert texts_from_file(p) == ["첫 번째 문장", "두 번째 문장"]
    assert len(texts_from_file(p, limit=1)) == 1


def test_pairs_from_file(tmp_path: Path) -> None:
    p = tmp_path / "p.tsv"
    p.write_text("a\tb\nc\td\te\n\n", encoding="utf-8")
    assert pairs_from_file(p) == [("a", "b"), ("c", "d", "e")]
    p.write_text("only one column\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"p\.tsv:1"):
        pairs_from_file(p)


def test_texts_from_posts(db: Any) -> None:
    vec = np.zeros(384, dtype=np.float32)
    vec[0] = 1
    with db.connection() as conn:
        conn.execute("INSERT INTO communities (id, name) VALUES ('simcse-test', 'x') ON CONFLICT DO NOTHING")
        for i, (title, body) in enumerate([("제목 하나", "본문 내용"), ("", "본문만 있는 글"), ("x", "")]):
            conn.execute(
                "INSERT INTO posts (id, community, title, body, created_at, embedding) "
                "VALUES (%s, 'simcse-test', %s, %s, now() + %s * interval '1 second', %s)",
                (f"simcse-test-{i}", title, body, i, vec),
            )
    try:
        texts = texts_from_posts(db)
        assert "제목 하나 본문 내용" in texts and "본문만 있는 글" in texts and "x" not in texts
        assert len(texts_from_posts(db, limit=1)) == 1
    finally:
        with db.connection() as conn:
            conn.execute("DELETE FROM posts WHERE community = 'simcse-test'")
