"""Ordinary permissions for files hanseek writes through private temporaries.

`tempfile.mkstemp` and `mkdtemp` create 0600/0700 entries, and a rename keeps them: a model, a media
file or a setting written that way cannot be read by a server running as another OS user. The mode
a plain `open()` would have given is 0666/0777 less the process umask.
"""

from __future__ import annotations

import re
from pathlib import Path

_UMASK = re.compile(r"^Umask:\s*([0-7]+)$", re.MULTILINE)


def umask() -> int:
    """The process umask, read without changing it (`os.umask` can only be read by setting it,
    which would leave another thread creating files under the wrong mask meanwhile)."""
    try:
        found = _UMASK.search(Path("/proc/self/status").read_text())
    except OSError:
        found = None
    return int(found.group(1), 8) if found else 0o022


def shared_mode(directory: bool = False) -> int:
    return (0o777 if directory else 0o666) & ~umask()
