"""Whether a str can be stored as PostgreSQL text: NUL is refused there, and an unpaired surrogate
(from a JSON "\\ud800" escape) has no UTF-8 form. Checked at the edges, so input is refused whole
and with the field's name, not half-way through a write by the database."""

from __future__ import annotations


def unstorable(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None when it can."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired UTF-16 surrogate (\\uD800-\\uDFFF)"
    return None
