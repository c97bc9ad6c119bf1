"""Where tables and per-user session histories live: one interface, two back ends.

- `memory`: this process's memory; one replica.
- `redis`: a Redis server shared by several replicas, so a user's session history is the
  same whichever replica answers, and tables are loaded once for all of them.

A store hands out table handles; recommenders only ever call `KeyedTable.get` and
`ListTable.items` and never know which back end answers.
"""
from __future__ import annotations

from service.stores.base import History, KeyedTable, ListTable, Sessions, Store

__all__ = ["History", "KeyedTable", "ListTable", "Sessions", "Store", "open_store"]


def open_store(backend: str, redis_url: str | None, redis_prefix: str,
               session_idle_s: float) -> Store:
    if backend == "memory":
        from service.stores.memory import MemoryStore
        return MemoryStore(session_idle_s)
    if backend == "redis":
        from service.stores.redis import RedisStore
        return RedisStore(redis_url, redis_prefix, session_idle_s)
    raise ValueError(f"unknown store backend {backend!r}: use 'memory' or 'redis'")
