"""A local folder: the same temp-then-rename protocol as HDFS, with os.replace."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable

from dataclient.errors import DataclientError
from dataclient.logfiles import BoundedReader, LogFile, open_unchanged
from dataclient.target import Listing, TempNames


def check_local_dir(local_dir: Path, log_dirs: list[Path]) -> Path:
    """The target folder, refused when it is (inside) a log folder: we never write among the
    service's own files, whose folder we promise not to change."""
    target = local_dir.resolve()
    for log_dir in log_dirs:
        source = log_dir.resolve()
        if target == source or source in target.parents:
            raise DataclientError(f"LOCAL_DIR {local_dir} is inside the log folder {log_dir}: "
                                  f"choose a folder outside the service's logs")
    if target.exists() and not target.is_dir():
        raise DataclientError(f"LOCAL_DIR {local_dir} exists and is not a folder")
    return target


class LocalTarget:
    def __init__(self, directory: Path, temps: TempNames, chunk_bytes: int):
        self.directory = directory
        self.description = f"local {directory}"
        self._temps = temps
        self._chunk_bytes = chunk_bytes

    def list(self) -> Listing:
        if not self.directory.is_dir():
            return Listing(exists=False)
        listing = Listing(exists=True)
        for entry in os.scandir(self.directory):
            if not entry.is_file(follow_symlinks=False):
                listing.other.append(entry.name)
            elif self._temps.is_temp(entry.name):
                listing.temps.append(entry.name)
            else:
                st = entry.stat(follow_symlinks=False)
                listing.files[entry.name] = (st.st_size, st.st_mtime_ns // 1_000_000)
        return listing

    def make_folder(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def remove(self, name: str) -> None:
        # Only ever called for our own temp files: log2local has no --cleanup.
        (self.directory / name).unlink()

    def put(self, lf: LogFile, on_bytes: Callable[[int], None]) -> None:
        temp = self.directory / self._temps.temp(lf.target_name)
        try:
            with open_unchanged(lf) as src, open(temp, "wb") as dst:
                shutil.copyfileobj(BoundedReader(src, lf.length, on_bytes), dst,
                                   self._chunk_bytes)
                dst.flush()
                os.fsync(dst.fileno())  # "complete" means on disk before the rename exposes it
            size = temp.stat().st_size
            if size != lf.length:
                raise DataclientError(f"size mismatch for {temp}: {size} bytes written, "
                                      f"{lf.length} expected; re-run to copy it again")
            mtime_ns = lf.mtime_ms * 1_000_000
            os.utime(temp, ns=(mtime_ns, mtime_ns))
            os.replace(temp, self.directory / lf.target_name)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
