"""The Redis store: tables and session histories in a Redis server shared by replicas.

Layout (all keys under a configurable prefix, default "botify"):
- `<prefix>:table:<digest>`: a hash, field = key (track or user id), value = the row as
  little-endian int64 bytes. `<digest>` is a hash of the file's content, so a table is
  written once however many replicas load it, and a key's content never changes: a reload
  that brings a new file simply points at a new key. Tables are written to a temporary key
  with pipelined HSETs and then RENAMEd, so readers never see a half-written table.
- `<prefix>:list:<digest>`: a top-pop list, the same int64 bytes.
- `<prefix>:session:<user>`: a Redis list of "track:time" entries for the open session; it
  expires after `session_idle_s` without a request.
One asynchronous round trip per /next, shared with the other requests in flight
(autopipeline.py): a Lua call appends to the session, reads it back, and reads the rows any
table in service may need for this (user, track). The event loop serves other requests
meanwhile. The recommender's lookups are then answered from those rows, kept
in a small cache of recent rows (always valid: a table key's content never changes); a row
not in the cache is read synchronously.
Old table keys are left in place for replicas still serving them; flush the prefix between
runs if memory matters.
"""
from __future__ import annotations

import hashlib
import uuid
from typing import Sequence

import redis
import redis.asyncio

from service.stores.base import History
from service.stores.autopipeline import AutoPipeline
from service.tables import KeyedRows, TrackList

# KEYS[1] the session, ARGV[1] the new entry; KEYS[i], ARGV[i] (i > 1): table hash, field;
# ARGV[#KEYS + 1] the session's idle expiry in ms. Returns the history, then each row (nil
# when absent).
_LISTEN = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[#KEYS + 1])
local out = {redis.call('LRANGE', KEYS[1], 0, -1)}
for i = 2, #KEYS do out[i] = redis.call('HGET', KEYS[i], ARGV[i]) end
return out
"""
_NOT_FETCHED = object()
_RECENT_ROWS = 10_000
_ROWS_PER_HSET = 1_000
_HSETS_PER_PIPELINE = 20


def _ints(data: bytes) -> memoryview:
    return memoryview(data).cast("q")


class RedisKeyedTable:
    def __init__(self, client: redis.Redis, key: str, by_user: bool, fetched: dict):
        self._client, self.key, self.by_user, self._fetched = client, key, by_user, fetched

    def get(self, key: int) -> Sequence[int] | None:
        data = self._fetched.get((self.key, key), _NOT_FETCHED)
        if data is _NOT_FETCHED:
            data = self._client.hget(self.key, key)
        return None if data is None else _ints(data)


class RedisListTable:
    def __init__(self, client: redis.Redis, key: str):
        self._client, self._key = client, key
        self._items: Sequence[int] | None = None

    def items(self) -> Sequence[int]:
        if self._items is None:  # read once: the key's content never changes
            self._items = _ints(self._client.get(self._key) or b"")
        return self._items


class RedisHistory(Sequence[tuple[int, float]]):
    """A session as Redis returns it ("track:time" entries), parsed when first read: the length
    alone (all that Contextual, Indexed, TopPop and Random use) needs no parsing, which would
    cost time per entry on every /next."""
    __slots__ = ("_entries", "_parsed")

    def __init__(self, entries: list[bytes]):
        self._entries, self._parsed = entries, None

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index):
        return self._items()[index]

    def __iter__(self):
        return iter(self._items())

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and self._items() == list(other)

    def __repr__(self) -> str:
        return f"RedisHistory({self._items()!r})"

    def _items(self) -> list[tuple[int, float]]:
        if self._parsed is None:
            self._parsed = []
            for entry in self._entries:
                track, _, listened = entry.partition(b":")
                self._parsed.append((int(track), float(listened)))
        return self._parsed


class RedisSessions:
    def __init__(self, client: redis.asyncio.Redis, prefix: str, idle_s: float):
        self._prefix, self._client = prefix, client
        self._idle_ms = max(1, round(idle_s * 1000))
        self._pipeline = AutoPipeline(client)
        self._listen_sha = hashlib.sha1(_LISTEN.encode()).hexdigest()
        self.tables: Sequence[RedisKeyedTable] = ()  # read ahead with each session update
        # Rows read ahead by recent requests, (table key, field) -> row bytes or None.
        self.fetched: dict[tuple[str, int], bytes | None] = {}

    async def listen(self, user: int, track: int, time: float) -> History:
        tables = self.tables
        entries, *rows = await self._pipeline.script(
            _LISTEN, self._listen_sha,
            keys=[f"{self._prefix}:session:{user}", *(t.key for t in tables)],
            args=[f"{track}:{time!r}", *(user if t.by_user else track for t in tables), self._idle_ms])
        if len(self.fetched) > _RECENT_ROWS:
            self.fetched.clear()
        for table, row in zip(tables, rows):
            self.fetched[(table.key, user if table.by_user else track)] = row
        return RedisHistory(entries)

    async def end(self, user: int) -> None:
        await self._pipeline.call("DEL", f"{self._prefix}:session:{user}")


class RedisStore:
    def __init__(self, url: str | None, prefix: str, session_idle_s: float):
        if not url:
            raise ValueError("store.redis_url is required with store.backend: redis")
        self._client = redis.Redis.from_url(url)
        self._prefix = prefix
        self._client.ping()  # fail at start-up, with the URL in the message, not on a request
        # Requests use the asyncio client (it connects lazily, inside the server's event loop);
        # loading tables and rare lookups use the blocking one.
        self._async_client = redis.asyncio.Redis.from_url(url)
        self._closed = False
        self.sessions = RedisSessions(self._async_client, prefix, session_idle_s)

    def keyed_table(self, rows: KeyedRows) -> RedisKeyedTable:
        key = f"{self._prefix}:table:{rows.digest}"
        if not self._client.exists(key):
            self._write_rows(key, rows)
        return RedisKeyedTable(self._client, key, rows.kind == "users", self.sessions.fetched)

    def track_list(self, rows: TrackList) -> RedisListTable:
        key = f"{self._prefix}:list:{rows.digest}"
        self._client.set(key, rows.tracks.astype("<i8").tobytes())
        return RedisListTable(self._client, key)

    def in_service(self, tables: Sequence[RedisKeyedTable]) -> None:
        self.sessions.tables = tuple(tables)

    def _write_rows(self, key: str, rows: KeyedRows) -> None:
        temporary = f"{key}:loading:{uuid.uuid4().hex}"
        data = rows.flat.astype("<i8").tobytes()
        bounds = (rows.offsets * 8).tolist()
        keys = rows.keys.tolist()
        pipe = self._client.pipeline(transaction=False)
        for chunk, start in enumerate(range(0, len(keys), _ROWS_PER_HSET), start=1):
            stop = min(start + _ROWS_PER_HSET, len(keys))
            pipe.hset(temporary, mapping={keys[i]: data[bounds[i]:bounds[i + 1]]
                                          for i in range(start, stop)})
            if chunk % _HSETS_PER_PIPELINE == 0:
                pipe.execute()
        pipe.execute()
        self._client.rename(temporary, key)

    async def close(self) -> None:
        """Disconnect; call it from the event loop that served requests (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._async_client.aclose()
            self._client.close()
