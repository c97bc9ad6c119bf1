"""The embedded store: tables and sessions in this process's memory (one replica)."""
from __future__ import annotations

from collections import OrderedDict
from time import monotonic
from typing import Sequence

from service.stores import DEFAULT_SESSION_IDLE_S, History
from service.tables import KeyedRows, TrackList


class MemoryKeyedTable:
    def __init__(self, rows: KeyedRows):
        # One memoryview per row over the shared flat array: O(1) lookups, no Python int
        # per value, and indexing a memoryview yields plain ints.
        flat = memoryview(rows.flat)
        bounds = rows.offsets.tolist()
        self._rows = {key: flat[bounds[i]:bounds[i + 1]] for i, key in enumerate(rows.keys.tolist())}

    def get(self, key: int) -> Sequence[int] | None:
        return self._rows.get(key)


class MemoryListTable:
    def __init__(self, rows: TrackList):
        self._items = tuple(rows.tracks.tolist())

    def items(self) -> Sequence[int]:
        return self._items


class MemorySessions:
    def __init__(self, idle_s: float):
        self._idle_s = idle_s
        # user -> (last request, history), least recently used first: expiry looks at the front.
        self._open: OrderedDict[int, tuple[float, list[tuple[int, float]]]] = OrderedDict()

    async def listen(self, user: int, track: int, time: float) -> History:
        now = monotonic()
        while self._open:
            oldest_user, (touched, _) = next(iter(self._open.items()))
            if now - touched <= self._idle_s:
                break
            del self._open[oldest_user]
        _, history = self._open.pop(user, (now, []))
        history.append((track, time))
        self._open[user] = (now, history)
        return history

    async def end(self, user: int) -> None:
        self._open.pop(user, None)


class MemoryStore:
    def __init__(self, session_idle_s: float = DEFAULT_SESSION_IDLE_S):
        self.sessions = MemorySessions(session_idle_s)

    def keyed_table(self, rows: KeyedRows) -> MemoryKeyedTable:
        return MemoryKeyedTable(rows)

    def track_list(self, rows: TrackList) -> MemoryListTable:
        return MemoryListTable(rows)

    def in_service(self, tables: Sequence[MemoryKeyedTable]) -> None:
        pass  # lookups are local: nothing to fetch ahead

    async def close(self) -> None:
        pass
