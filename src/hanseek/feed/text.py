"""What the encoder reads for a post: the configured fields, in order, one per line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

KNOWN_FIELDS = ("title", "category", "body", "community", "author")


def post_text(post: Mapping[str, object], fields: Sequence[str], max_body_chars: int = 1000) -> str:
    """Join the non-empty fields. Listing a field twice repeats it, which weighs it more in the mean
    pooled vector; the body is cut so one long post cannot dominate encoding time."""
    parts: list[str] = []
    for name in fields:
        value = post.get(name)
        if value is None:
            continue
        text = " ".join(str(value).split())
        if name == "body" and max_body_chars:
            text = text[:max_body_chars]
        if text:
            parts.append(text)
    return "\n".join(parts)
