"""HTTP conditional and partial GETs (RFC 9110 §13, §14) for files sent from an open descriptor.

Starlette's `FileResponse` does both, but from a path it opens after the handler returns; the image
files are sent from a file opened in the handler (see `images._file_response`), so the two checks
that response would have made are made here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

# At most 18 digits a side (files are far smaller): a longer number is ignored with the header, where
# int() would refuse one of over 4,300 digits (a ValueError: a 500).
_SPEC = re.compile(r"\s*([0-9]{0,18})-([0-9]{0,18})\s*")


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    """A well-formed range none of whose bytes the file has (416)."""


def etag_matches(if_none_match: str, etag: str) -> bool:
    """`If-None-Match`: `*`, or a list in which `etag` appears (weak comparison: `W/` ignored)."""
    if if_none_match.strip() == "*":
        return True
    plain = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == plain for tag in if_none_match.split(","))


def not_modified_since(if_modified_since: str, mtime: float) -> bool:
    """`If-Modified-Since` (used only without `If-None-Match`): the file's seconds are not after the
    date given. An unparseable date is ignored (the whole file); one without a zone (asctime's
    format, or `-0000`) is GMT, as RFC 9110 §5.6.7 reads it."""
    try:
        since = parsedate_to_datetime(if_modified_since)
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return int(mtime) <= since.timestamp()
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 20-digit year (was a 500)
        return False


def requested_range(range_header: str, size: int) -> ByteRange | None:
    """The one byte range asked for, or None where the whole file is the answer: a header that is not
    `bytes=…`, is malformed, or asks for several ranges (a server may ignore such a Range and send
    200). Raises Unsatisfiable when the range starts at or past the end of the file."""
    unit, sep, spec = range_header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    m = _SPEC.fullmatch(spec)
    if m is None:
        return None
    first, last = m.groups()
    if first == "":  # bytes=-N: the last N bytes
        if last == "":
            return None
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(size - n, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored, as RFC 9110 §14.1.1 allows
    if start >= size:
        raise Unsatisfiable
    end = int(last) if last else size - 1
    return ByteRange(start, min(end, size - 1))
