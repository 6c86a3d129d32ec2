"""Which file of a sentiment model an error came from.

A damaged file fails in its reader's own words ("File is not a zip file", "Expecting value: line 1
column 1", "invalid header length"), none naming the file; the service's one-line 503 message then
said what was wrong but not where. Readers wrap each file in `reading(NAME)`, and `file_of` gives
the name back to whoever describes the error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_NOTE = "hanseek-model-file: "


@contextmanager
def reading(filename: str) -> Iterator[None]:
    try:
        yield
    except Exception as e:
        e.add_note(_NOTE + filename)
        raise


def file_of(e: BaseException) -> str | None:
    """The innermost model file being read when `e` was raised, if a reader named one."""
    names = [n.removeprefix(_NOTE) for n in getattr(e, "__notes__", []) if n.startswith(_NOTE)]
    return names[0] if names else None
