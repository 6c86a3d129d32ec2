"""What a CLI said, as one line of words: rich draws usage errors in a box and wraps long lines (a
temporary path moves the wrap), so tests compare messages after dropping the box and the breaks."""

from __future__ import annotations

_BOX = str.maketrans("│╭╮╰╯─", "      ")


def flat(output: str) -> str:
    return " ".join(output.translate(_BOX).split())
