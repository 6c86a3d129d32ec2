"""Training text sources: a plain text file, pairs files, or the service's own posts table."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hanseek.train.simcse import Pair


def _clean(text: str) -> str:
    return " ".join(text.split())


def texts_from_file(path: Path, *, min_chars: int = 5, limit: int | None = None, seed: int = 42) -> list[str]:
    """One text per line (blank and very short lines dropped, duplicates removed, order kept).
    `limit` keeps a seeded random sample rather than the head of the file."""
    seen: set[str] = set()
    out: list[str] = []
    with Path(path).open(encoding="utf-8-sig") as fh:
        for line in fh:
            t = _clean(line)
            if len(t) >= min_chars and t not in seen:
                seen.add(t)
                out.append(t)
    if limit is not None and len(out) > limit:
        out = random.Random(seed).sample(out, limit)
    return out


def pairs_from_file(path: Path) -> list[Pair]:
    """Tab-separated `anchor<TAB>positive[<TAB>hard negative]` lines (e.g. KorNLI entailment pairs)."""
    out: list[Pair] = []
    with Path(path).open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, 1):
            cols = [_clean(c) for c in line.rstrip("\r\n").split("\t")]
            if not any(cols):
                continue
            if len(cols) == 2 and all(cols):
                out.append((cols[0], cols[1]))
            elif len(cols) == 3 and all(cols):
                out.append((cols[0], cols[1], cols[2]))
            else:
                raise ValueError(f"{path}:{n}: expected 2 or 3 non-empty tab-separated columns")
    return out


def texts_from_posts(db: Any, *, limit: int | None = None, min_chars: int = 5) -> list[str]:
    """Title and body of each post (newest first), as one text per post."""
    # The length filter is in SQL so that LIMIT counts usable posts only.
    sql = (
        "SELECT title, body FROM posts WHERE char_length(btrim(title || ' ' || body)) >= %s "
        "ORDER BY created_at DESC"
    )
    params: tuple[Any, ...] = (min_chars,)
    if limit:
        sql += " LIMIT %s"
        params = (min_chars, limit)
    with db.connection() as conn:
        rows = conn.execute(sql, params).fetchall()
    out = []
    for title, body in rows:
        t = _clean(f"{title or ''} {body or ''}")
        if len(t) >= min_chars:
            out.append(t)
    return out
