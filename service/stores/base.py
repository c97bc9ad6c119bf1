"""What every store provides (the protocols recommenders and the app rely on) and the session
history's shape; the back ends (memory.py, redis.py) implement it."""
from __future__ import annotations

from typing import Protocol, Sequence

from service.tables import KeyedRows, TrackList

# A session history: (track, time) for every track the user sent in the open session,
# oldest first, the current request's track last.
History = Sequence[tuple[int, float]]

class KeyedTable(Protocol):
    def get(self, key: int) -> Sequence[int] | None:
        """The list stored under `key` (a track or a user), or None when the key is absent."""


class ListTable(Protocol):
    def items(self) -> Sequence[int]:
        """The whole list (top-pop: most popular first)."""


class Sessions(Protocol):
    async def listen(self, user: int, track: int, time: float) -> History:
        """Append (track, time) to the user's open session and return the whole history. A
        session idle for longer than the store's `session_idle_s` is started afresh: a client that
        never sent /last must not leave its user's next session appended to a stale one."""

    async def end(self, user: int) -> None:
        """Forget the user's session (after /last)."""


class Store(Protocol):
    sessions: Sessions

    def keyed_table(self, rows: KeyedRows) -> KeyedTable: ...
    def track_list(self, rows: TrackList) -> ListTable: ...

    def in_service(self, tables: Sequence[KeyedTable]) -> None:
        """The keyed tables the serving snapshot reads (a store may fetch the rows a request
        will need together with its session)."""

    async def close(self) -> None: ...
