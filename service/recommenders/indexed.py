"""Indexed: a random track from the user's own list (a user-keyed table such as the SVD
table); users without a list go to the fallback."""
from __future__ import annotations

from service.recommenders import Listen, Recommender
from service.stores import KeyedTable


class Indexed:
    def __init__(self, users: KeyedTable, fallback: Recommender | None, seed: int):
        self._users, self._fallback, self._seed = users, fallback, seed

    def recommend(self, listen: Listen) -> int | None:
        tracks = self._users.get(listen.user)
        if tracks:
            return listen.pick(tracks, self._seed, "indexed")
        return self._fallback.recommend(listen) if self._fallback else None
