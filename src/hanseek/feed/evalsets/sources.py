"""Posts for the evaluation sets, read from the real data in ../shared/data (see each SOURCE.md).

Only the posts are real (text, board, date, agree count); who read what is simulated by the reader
model in `reader.py`, because none of the available data sets has user ids.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class SourcePost:
    id: str
    community: str
    category: str
    title: str
    body: str
    created_at: float  # epoch seconds
    popularity: int  # final agree count


def _day_start(day: str) -> datetime:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)


def _time_of_day(key: str) -> float:
    # Dates have no time of day; a stable pseudo-random one per post orders posts within a day.
    h = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") % SECONDS_PER_DAY


def petitions_titles(
    path: Path, *, expiry_from: str = "2019-05-01", expiry_to: str = "2021-01-31", open_days: int = 30
) -> list[SourcePost]:
    """Titles with board and agree count. A petition is open for 30 days, so it was posted
    `open_days` before its expiry date. From May 2019 on the file keeps only petitions with more than
    about 100 agrees, over 20 months — which gives the 7/30/180-day windows something to cut."""
    out: list[SourcePost] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            exp = row["expiryDate"]
            title = (row["title"] or "").strip()
            if not (expiry_from <= exp <= expiry_to) or not title:
                continue
            pid = str(int(float(row["id"])))
            if pid in seen:
                continue
            seen.add(pid)
            created = _day_start(exp) - timedelta(days=open_days)
            out.append(
                SourcePost(
                    id=f"pt{pid}",
                    community=row["category"],
                    category=row["category"],
                    title=title,
                    body="",
                    created_at=created.timestamp() + _time_of_day(pid),
                    popularity=int(row["numOfAgrees"]),
                )
            )
    out.sort(key=lambda p: (p.created_at, p.id))
    return out


def petitions_archive(folder: Path, *, body_chars: int = 400) -> list[SourcePost]:
    """Long-form petitions (title + body) from the monthly JSON Lines files."""
    out: list[SourcePost] = []
    seen: set[str] = set()
    for file in sorted(folder.glob("petitions_*.jsonl")):
        with file.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                pid = str(r["petition_idx"])
                title = (r.get("title") or "").strip()
                if pid in seen or not title:
                    continue
                seen.add(pid)
                body = " ".join((r.get("content") or "").split())[:body_chars]
                out.append(
                    SourcePost(
                        id=f"pa{pid}",
                        community=r["category"],
                        category=r["category"],
                        title=title,
                        body=body,
                        created_at=_day_start(r["begin"]).timestamp() + _time_of_day(pid),
                        popularity=int(r.get("num_agree") or 0),
                    )
                )
    out.sort(key=lambda p: (p.created_at, p.id))
    return out
