"""The embedded store: tables and sessions in this process's memory (one replica)."""
from __future__ import annotations

from array import array
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
    hold; an array is one object to it, and 16 bytes an entry instead of three objects.
    `touched` is the monotonic time of the session's last request."""
    __slots__ = ("tracks", "times", "touched")

    def __init__(self):
        self.tracks, self.times = array("q"), array("d")
        self.touched = 0.0

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
    """user -> open session. A request finding its user's session idle for longer than `idle_s`
    starts a new one; idle sessions are swept out of memory once per `idle_s`.

    Why a plain dict swept now and then rather than one kept in order of last request (whose
    front would be the idle sessions): keeping that order relinks list nodes scattered in
    memory on every request, where the sweep visits each session once per `idle_s`."""

    def __init__(self, idle_s: float):
        self._idle_s = idle_s
        self._open: dict[int, MemoryHistory] = {}
        self._next_sweep = monotonic() + idle_s

    async def listen(self, user: int, track: int, time: float) -> History:
        now = monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        history = self._open.get(user)
        if history is None or now - history.touched > self._idle_s:
            history = self._open[user] = MemoryHistory()
        history.tracks.append(track)
        history.times.append(time)
        history.touched = now
        return history

    def _sweep(self, now: float) -> None:
        idle = [user for user, history in self._open.items() if now - history.touched > self._idle_s]
        for user in idle:
            del self._open[user]
        self._next_sweep = now + self._idle_s

    async def end(self, user: int) -> None:
        self._open.pop(user, None)


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
