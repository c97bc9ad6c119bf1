"""Progress of a long step, readable wherever the output goes.

On a terminal, a tqdm bar. Anywhere else (a file, a pipe, a CI log) a plain line each time
another tenth of the work is done and one at the end: a bar redraws itself with carriage
returns, and written to a file its frames pile up on one unreadable line.

    with progress_meter(len(files), desc="upload", unit="file") as bar:
        ...
        bar.update(1)

    for item in tracked(items, desc="ALS", unit="iteration"):
        ...
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

from tqdm import tqdm

T = TypeVar("T")
# off a terminal, a line each time this share of the total is done
STEP = 0.1
LINE = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"
# more done than the total announced (an estimate, e.g. a run whose sessions depend on chance)
LINE_PAST_TOTAL = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}]"


class PlainProgress:
    """Counts work like a tqdm bar does (`update`, `close`, a context manager) and prints a
    plain line at each tenth of `total` and at the end. Thread-safe: `update` may be called
    from worker threads."""

    def __init__(self, total: int, desc: str, unit: str, file: IO[str],
                 unit_scale: bool = False, unit_divisor: int = 1000):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.file = file
        self.unit_scale = unit_scale
        self.unit_divisor = unit_divisor
        self.n = 0
        self._printed = 0           # `n` at the last line printed (no line for no work)
        self._next = STEP * total   # `n` at which the next line is due
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._closed = False

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n
            if self.n >= self._next and self._printed < self.total:
                self._print()
                # past several tenths at once: one line, then the next tenth still ahead
                while self._next <= self.n:
                    self._next += STEP * self.total

    def close(self) -> None:
        with self._lock:
            if not self._closed and self.n != self._printed:
                self._print()
            self._closed = True

    def _print(self) -> None:
        past = self.n > self.total
        line = tqdm.format_meter(self.n, None if past else self.total,
                                 time.monotonic() - self._started, prefix=self.desc,
                                 unit=self.unit, unit_scale=self.unit_scale,
                                 unit_divisor=self.unit_divisor,
                                 bar_format=LINE_PAST_TOTAL if past else LINE)
        print(line, file=self.file, flush=True)
        self._printed = self.n

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_meter(total: int, desc: str, unit: str = "it", *, unit_scale: bool = False,
             unit_divisor: int = 1000, file: IO[str] | None = None,
             disable: bool = False) -> tqdm | PlainProgress:
    """A progress counter for `total` units of work, written to `file` (stderr by default):
    a tqdm bar when `file` is a terminal, plain lines otherwise; nothing when `disable`."""
    file = sys.stderr if file is None else file
    if disable or file.isatty():
        return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale,
                    unit_divisor=unit_divisor, file=file, disable=disable)
    return PlainProgress(total, desc, unit, file, unit_scale, unit_divisor)


def tracked(items: Iterable[T], desc: str, unit: str = "it", *, total: int | None = None,
            file: IO[str] | None = None) -> Iterator[T]:
    """`items`, counting each one as it is taken (`total`: len(items) by default)."""
    with progress_meter(len(items) if total is None else total, desc, unit, file=file) as bar:
        for item in items:
            yield item
            bar.update(1)
