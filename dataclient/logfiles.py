"""Which log files to move, under which target names, and how many of their bytes.

Layout (written by the service): one folder per replica, holding the active log file and its
size-rotated predecessors. Every regular file in the folder is a log file, except hidden and
temporary ones (conf `skip_names`). The target name is `<replica folder><separator><file>`, so
two replicas' `events.jsonl` never collide and a name means the same file on every run.

The active file may grow while we read it. The service only appends, so the bytes up to the
last newline seen when we plan are final: we move exactly those and never half a JSON line.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from dataclient.errors import DataclientError


@dataclass(frozen=True)
class LogFile:
    path: Path
    target_name: str
    length: int           # bytes up to and including the last newline when planned
    mtime_ms: int         # local modification time, copied to the target (see transfer.py)
    inode: tuple[int, int]  # (st_dev, st_ino): detects a file rotated away between plan and copy
    incomplete_tail: int  # bytes after the last newline: a line still being written


class LocalFileChanged(Exception):
    """The file was rotated away or truncated while we were copying it."""


def complete_length(f: BinaryIO, size: int, window: int) -> int:
    """Offset just past the last b"\\n" in the first `size` bytes of `f` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - window)
        f.seek(start)
        block = f.read(end - start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0


def find_log_files(log_dirs: list[Path], skip_names: tuple[str, ...], separator: str,
                   window: int) -> tuple[list[LogFile], list[str]]:
    """The log files to move, sorted by target name, and warnings about files left out."""
    files: list[LogFile] = []
    warnings: list[str] = []
    owner_of: dict[str, Path] = {}
    for log_dir in log_dirs:
        if not log_dir.is_dir():
            what = "is not a folder" if log_dir.exists() else "does not exist"
            raise DataclientError(f"log folder {log_dir} {what}; pass --log-dir with a "
                                  f"replica's log folder (e.g. runtime/logs/<replica>)")
        replica = log_dir.resolve().name
        for entry in sorted(os.scandir(log_dir), key=lambda e: e.name):
            # Symlinks and sub-folders are not the service's log files; following them could
            # upload the same bytes twice.
            if not entry.is_file(follow_symlinks=False):
                continue
            if any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in skip_names):
                continue
            target_name = f"{replica}{separator}{entry.name}"
            if target_name in owner_of:
                raise DataclientError(
                    f"{entry.path} and {owner_of[target_name]} would both be stored as "
                    f"{target_name!r}: replica log folders need distinct names")
            owner_of[target_name] = Path(entry.path)
            with open(entry.path, "rb") as f:
                st = os.fstat(f.fileno())
                length = complete_length(f, st.st_size, window)
            if length == 0:
                warnings.append(f"skipped {entry.path}: no complete line yet ({st.st_size} bytes)")
                continue
            tail = st.st_size - length
            if tail:
                warnings.append(f"{entry.path}: its last {tail} bytes are a line still being "
                                f"written; only the {length} bytes before it count this run")
            files.append(LogFile(path=Path(entry.path), target_name=target_name, length=length,
                                 mtime_ms=st.st_mtime_ns // 1_000_000,
                                 inode=(st.st_dev, st.st_ino), incomplete_tail=tail))
    return sorted(files, key=lambda lf: lf.target_name), warnings


class BoundedReader:
    """The first `length` bytes of an open file, as a file-like request body.

    `__len__` gives requests a Content-Length, so the body is streamed like a plain file PUT
    (no chunked encoding), but never past the planned last newline. A file that ends early was
    truncated under us: raising aborts the request instead of sending a short body.
    """

    def __init__(self, f: BinaryIO, length: int, on_bytes: Callable[[int], None]):
        self._f = f
        self._left = length
        self._length = length
        self._on_bytes = on_bytes

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._f.read(size)
        if not data:
            raise LocalFileChanged(f"{self._f.name} ended {self._left} bytes early: it was "
                                   f"truncated while being copied")
        self._left -= len(data)
        self._on_bytes(len(data))
        return data


def open_unchanged(lf: LogFile) -> BinaryIO:
    """Open the planned file, refusing a different file that took its name (rotation)."""
    try:
        f = open(lf.path, "rb")
    except FileNotFoundError as e:
        raise LocalFileChanged(f"{lf.path} disappeared after planning (rotated?)") from e
    st = os.fstat(f.fileno())
    if (st.st_dev, st.st_ino) != lf.inode or st.st_size < lf.length:
        f.close()
        raise LocalFileChanged(f"{lf.path} was rotated or truncated after planning")
    return f
