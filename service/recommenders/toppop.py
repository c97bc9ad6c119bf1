"""TopPop: a random track among the `top_k` most popular (random so that not every session
gets the same track)."""
from __future__ import annotations

from pydantic import Field

from service.recommenders import Listen
from service.recommenders.registry import BuildContext, Params, Slot, register
from service.stores import ListTable


@register("toppop")
class TopPop:
    tables = {"toppop": Slot("toppop")}

    class Params(Params):
        top_k: int = Field(100, ge=1, description="pick among the top_k most popular")

    def __init__(self, toppop: ListTable, top_k: int, seed: int):
        self._toppop, self._top_k, self._seed = toppop, top_k, seed

    @classmethod
    def build(cls, ctx: BuildContext) -> "TopPop":
        return cls(ctx.table("toppop"), ctx.params.top_k, ctx.seed)

    def recommend(self, listen: Listen) -> int | None:
        tracks = self._toppop.items()[:self._top_k]
        return listen.pick(tracks, self._seed, "toppop") if len(tracks) else None
