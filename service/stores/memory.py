"""The embedded store: tables and sessions in this process's memory (one replica)."""
from __future__ import annotations

from array import array
from collections import OrderedDict
from time import monotonic
from typing import Callable, Sequence

from service.stores.base import History
from service.tables import KeyedRows, TrackList


class MemoryKeyedTable:
    def __init__(self, rows: KeyedRows):
        # One memoryview per row over the shared flat array: O(1) lookups, no Python int
        # per value, and indexing a memoryview yields plain ints.
        flat = memoryview(rows.flat)
        bounds = rows.offsets.tolist()
        rows_by_key = {key: flat[bounds[i]:bounds[i + 1]] for i, key in enumerate(rows.keys.tolist())}
        # KeyedTable.get is the dict's own get: a lookup costs no Python call on /next.
        self.get: Callable[[int], Sequence[int] | None] = rows_by_key.get


class MemoryListTable:
    def __init__(self, rows: TrackList):
        self._items = tuple(rows.tracks.tolist())

    def items(self) -> Sequence[int]:
        return self._items


class MemoryHistory(Sequence[tuple[int, float]]):
    """A session's (track, time) entries in two typed arrays, read as a sequence of tuples.

    Why not a list of tuples: a list is a container the garbage collector visits entry by
    entry, so every full collection would take longer the more entries the open sessions
    hold; an array is one object to it, and 16 bytes an entry instead of three objects."""
    __slots__ = ("tracks", "times")

    def __init__(self):
        self.tracks, self.times = array("q"), array("d")

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(zip(self.tracks[index], self.times[index]))
        return self.tracks[index], self.times[index]

    def __iter__(self):
        return zip(self.tracks, self.times)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"MemoryHistory({list(self)!r})"


class MemorySessions:
    def __init__(self, idle_s: float):
        self._idle_s = idle_s
        # user -> history, least recently used first (expiry looks at the front), and user ->
        # last request. Two maps, not one of (time, history) pairs: a request then leaves no new
        # container object behind for the garbage collector to trace.
        self._open: OrderedDict[int, MemoryHistory] = OrderedDict()
        self._touched: dict[int, float] = {}

    async def listen(self, user: int, track: int, time: float) -> History:
        now, sessions, touched = monotonic(), self._open, self._touched
        while sessions:
            oldest_user = next(iter(sessions))
            if now - touched[oldest_user] <= self._idle_s:
                break
            del sessions[oldest_user], touched[oldest_user]
        history = sessions.get(user)
        if history is None:
            history = sessions[user] = MemoryHistory()
        else:
            sessions.move_to_end(user)
        history.tracks.append(track)
        history.times.append(time)
        touched[user] = now
        return history

    async def end(self, user: int) -> None:
        if self._open.pop(user, None) is not None:
            del self._touched[user]


class MemoryStore:
    def __init__(self, session_idle_s: float):
        self.sessions = MemorySessions(session_idle_s)

    def keyed_table(self, rows: KeyedRows) -> MemoryKeyedTable:
        return MemoryKeyedTable(rows)

    def track_list(self, rows: TrackList) -> MemoryListTable:
        return MemoryListTable(rows)

    def in_service(self, tables: Sequence[MemoryKeyedTable]) -> None:
        pass  # lookups are local: nothing to fetch ahead

    async def close(self) -> None:
        pass
