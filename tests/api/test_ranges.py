"""Range and If-None-Match parsing, against the cases RFC 9110 §14 spells out."""

from __future__ import annotations

import pytest

from hanseek.api.ranges import ByteRange, Unsatisfiable, etag_matches, not_modified_since, requested_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-499", ByteRange(0, 499)),
        ("bytes=500-999", ByteRange(500, 999)),
        ("bytes=9500-", ByteRange(9500, 9999)),
        ("bytes=-500", ByteRange(9500, 9999)),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=9999-20000", ByteRange(9999, 9999)),  # an end past the file is cut to it
        ("bytes=-20000", ByteRange(0, 9999)),  # a suffix longer than the file is all of it
        ("BYTES = 1-2", ByteRange(1, 2)),
        # The whole file: not bytes, malformed, several ranges (allowed to be ignored), last < first.
        ("items=0-1", None),
        ("bytes=1-2,4-5", None),
        ("bytes=5-1", None),
        ("bytes=abc", None),
        ("bytes=-", None),
        ("bytes=²-3", None),  # a Unicode digit that int() would not take
        ("bytes", None),
        ("bytes=0-" + "9" * 4301, None),  # int() refuses over 4,300 digits: was a 500
        ("bytes=" + "9" * 4301 + "-", None),
    ],
)
def test_requested_range(header: str, expected: ByteRange | None) -> None:
    assert requested_range(header, 10_000) == expected


@pytest.mark.parametrize("header", ["bytes=10000-", "bytes=10000-10005", "bytes=-0"])
def test_ranges_past_the_end_are_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        requested_range(header, 10_000)


def test_content_range_and_length() -> None:
    part = ByteRange(500, 999)
    assert part.length == 500 and part.content_range(10_000) == "bytes 500-999/10000"


def test_etag_matches() -> None:
    assert etag_matches('"abc"', '"abc"') and etag_matches("*", '"abc"')
    assert etag_matches('"x", W/"abc"', '"abc"')
    assert not etag_matches('"abcd"', '"abc"') and not etag_matches('"x", "y"', '"abc"')


def test_not_modified_since() -> None:
    mtime = 1_700_000_000.7  # Tue, 14 Nov 2023 22:13:20 GMT (+0.7 s, which HTTP dates cannot carry)
    assert not_modified_since("Tue, 14 Nov 2023 22:13:20 GMT", mtime)
    assert not_modified_since("Wed, 15 Nov 2023 00:00:00 GMT", mtime)
    assert not not_modified_since("Tue, 14 Nov 2023 22:13:19 GMT", mtime)
    assert not not_modified_since("yesterday", mtime) and not not_modified_since("", mtime)
    assert not_modified_since("Tue Nov 14 22:13:20 2023", mtime)  # asctime: GMT (RFC 9110 §5.6.7)
    for overflowing in (  # parsedate_to_datetime's OverflowError: a 500 in the first version
        "Mon, 01 Jan 99999999999999999999 00:00:00 GMT",
        "Mon, 01 Jan 2001 00:00:00 +99999999999999999999999",
        "Jan 99999999999999999999 2020 1.5",
    ):
        assert not not_modified_since(overflowing, mtime)
