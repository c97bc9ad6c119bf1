"""What log2hdfs and log2local have in common: a folder of files written temp-then-rename.

A target folder holds visible files (complete, named `<replica>__<file>`) and possibly temp
files left by an interrupted run (`<temp_prefix><name><temp_suffix>`, hidden from Spark).
Every file we complete carries the local file's modification time, so (size, mtime) equal to
the local file's planned (length, mtime) means "already moved, identical" - rsync's quick check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from dataclient.logfiles import LogFile


@dataclass(frozen=True)
class TempNames:
    prefix: str
    suffix: str

    def temp(self, name: str) -> str:
        return f"{self.prefix}{name}{self.suffix}"

    def is_temp(self, name: str) -> bool:
        return name.startswith(self.prefix) and name.endswith(self.suffix)


@dataclass
class Listing:
    """A target folder's content. `exists` is False when the folder is not there yet."""
    exists: bool
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (size, mtime_ms)
    temps: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)                   # sub-folders and the like


class Target(Protocol):
    description: str  # where the files go, for messages

    def list(self) -> Listing: ...

    def make_folder(self) -> None: ...

    def remove(self, name: str) -> None:
        """Remove one entry of the folder (recursively for a sub-folder)."""

    def put(self, lf: LogFile, on_bytes: Callable[[int], None]) -> None:
        """Copy lf's first lf.length bytes to a temp name, verify the size, stamp lf.mtime_ms,
        then rename over lf.target_name in one step. On failure the temp file is removed when
        possible (a killed run leaves it for the next run to remove)."""
