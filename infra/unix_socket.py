"""A path for a new Unix socket. The kernel takes at most 107 bytes of path (sockaddr_un), so a
socket gets a fresh folder of its own in the temporary folder, or in /tmp when a deep TMPDIR
(a test's, say) would make the path longer than that."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

MAX_PATH_BYTES = 107   # sockaddr_un's sun_path, less its terminating NUL


def fits(path: Path) -> bool:
    return len(os.fsencode(path)) <= MAX_PATH_BYTES


def new_socket_path(name: str) -> Path:
    """<a new folder>/<name>: the caller binds the socket there and removes the folder after."""
    for parent in (None, "/tmp"):
        path = Path(tempfile.mkdtemp(prefix="botify-", dir=parent)) / name
        if fits(path):
            return path
        path.parent.rmdir()
    raise OSError(f"no Unix socket path of at most {MAX_PATH_BYTES} bytes for {name!r}, even in /tmp")
