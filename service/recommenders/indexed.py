"""Indexed: a random track from the user's own list (a user-keyed table such as the SVD
table); users without a list go to the fallback (TopPop when the arm gives a top-pop table,
else Random)."""
from __future__ import annotations

from service.recommenders import Listen, Recommender
from service.recommenders.registry import BuildContext, Slot, register
from service.stores import KeyedTable


@register("indexed")
class Indexed:
    tables = {"users": Slot("users"), "toppop": Slot("toppop", required=False)}

    def __init__(self, users: KeyedTable, fallback: Recommender | None, seed: int):
        self._users, self._fallback, self._seed = users, fallback, seed

    @classmethod
    def build(cls, ctx: BuildContext) -> "Indexed":
        fallback = (ctx.recommender("toppop", tables={"toppop": "toppop"})
                    if ctx.table("toppop") is not None else ctx.recommender("random"))
        return cls(ctx.table("users"), fallback, ctx.seed)

    def recommend(self, listen: Listen) -> int | None:
        tracks = self._users.get(listen.user)
        if tracks:
            return listen.pick(tracks, self._seed, "indexed")
        return self._fallback.recommend(listen) if self._fallback else None
