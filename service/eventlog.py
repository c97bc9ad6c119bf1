"""The event log: one JSON line per answered request (schema: contract/events.py), written by
a background thread so that a request only serialises its event and appends the line to a queue.

Files, in the replica's folder:
- `events.jsonl`: the active file, appended to;
- `events.jsonl.1`, `events.jsonl.2`, ...: full files. When the active file would pass
  `max_bytes` it is closed and renamed to the next unused number (numbers only grow and a
  rotated file is never renamed or touched again). A restart continues the numbering.
Lines are written whole (one write of complete lines per batch) and rotation happens between
lines, so only the active file can end in a partial line, and only while a write is in
progress. A write cut short (disk full) is cut back to the last whole line and retried with
its lines later, so no line is torn or written twice. `close()` writes everything queued,
fsyncs and closes: call it on SIGTERM.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections import deque
from pathlib import Path

import orjson

ACTIVE = "events.jsonl"
_ROTATED = re.compile(r"^events\.jsonl\.(\d+)$")
log = logging.getLogger("service.eventlog")


class EventLog:
    def __init__(self, folder: Path, max_bytes: int, flush_interval_s: float):
        folder.mkdir(parents=True, exist_ok=True)
        self._folder, self._max_bytes, self._interval = folder, max_bytes, flush_interval_s
        numbers = [int(m.group(1)) for name in os.listdir(folder) if (m := _ROTATED.match(name))]
        self._next_number = max(numbers, default=0) + 1
        self._file = self._open_active()
        self._size = self._file.seek(0, os.SEEK_END)
        self._queue: deque[bytes] = deque()   # lines appended by the event loop, drained here
        self._pending: list[bytes] = []       # serialised lines not yet written (retried on error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-log", daemon=True)
        self._thread.start()

    def append(self, event: dict) -> None:
        """Queue one event (built by contract.events.make_event); cheap and thread-safe.

        Serialised here rather than by the writer: a line is one bytes object, which the
        garbage collector never visits, where the event's values would stay tracked until the
        next write, and the writer then holds the GIL only to write."""
        self._queue.append(orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._file.close()

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._interval)  # read before draining: nothing is missed
            try:
                self._drain()
            except OSError as e:  # disk full, folder removed...: keep the lines, retry later
                if not stopping:
                    log.error("event log write to %s failed, will retry: %s", self._folder, e)
                    continue
                log.error("event log write to %s failed at shutdown: %d events lost: %s",
                          self._folder, len(self._pending), e)
            if stopping:
                os.fsync(self._file.fileno())
                return

    def _drain(self) -> None:
        queue, pending = self._queue, self._pending
        while queue:
            pending.append(queue.popleft())
        written = 0
        try:
            batch, batch_size = [], 0
            for line in pending:
                if self._size + batch_size + len(line) > self._max_bytes and self._size + batch_size:
                    self._write(batch)
                    written += len(batch)
                    batch, batch_size = [], 0
                    self._rotate()
                batch.append(line)
                batch_size += len(line)
            self._write(batch)
            written += len(batch)
        finally:
            del pending[:written]  # what failed stays pending and is retried, nothing twice

    def _open_active(self):
        # Unbuffered: a failed write leaves nothing in a buffer to be written again later.
        return open(self._folder / ACTIVE, "ab", buffering=0)

    def _write(self, batch: list[bytes]) -> None:
        if not batch:
            return
        data = b"".join(batch)
        rest = memoryview(data)
        try:
            while rest:
                rest = rest[self._file.write(rest):]
        except OSError:
            os.ftruncate(self._file.fileno(), self._size)  # drop the part of the batch written
            raise
        self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        os.rename(self._folder / ACTIVE, self._folder / f"{ACTIVE}.{self._next_number}")
        self._next_number += 1
        self._file = self._open_active()
        self._size = 0
