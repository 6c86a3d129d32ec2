"""The mode files written through private temporaries get: what open() would give."""

from __future__ import annotations

import os

import pytest

from hanseek.files import shared_mode, umask


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_shared_mode_follows_the_umask(mask: int) -> None:
    old = os.umask(mask)
    try:
        assert shared_mode() == 0o666 & ~mask and shared_mode(directory=True) == 0o777 & ~mask
        assert umask() == mask
    finally:
        os.umask(old)
