"""TopPop: a random track among the `top_k` most popular (random so that not every session
gets the same track)."""
from __future__ import annotations

from service.recommenders import Listen
from service.stores import ListTable


class TopPop:
    def __init__(self, toppop: ListTable, top_k: int, seed: int):
        self._toppop, self._top_k, self._seed = toppop, top_k, seed

    def recommend(self, listen: Listen) -> int | None:
        tracks = self._toppop.items()[:self._top_k]
        return listen.pick(tracks, self._seed, "toppop") if len(tracks) else None
