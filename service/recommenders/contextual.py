"""Contextual: a random track from the previous track's list in a track-keyed table (the
course's contextual table, or the NN table); tracks without a list go to the fallback
(Random, when built from a config)."""
from __future__ import annotations

from service.recommenders import Listen, Recommender
from service.recommenders.registry import BuildContext, Slot, register
from service.stores import KeyedTable


@register("contextual")
class Contextual:
    tables = {"tracks": Slot("tracks")}

    def __init__(self, tracks: KeyedTable, fallback: Recommender | None, seed: int):
        self._tracks, self._fallback, self._seed = tracks, fallback, seed

    @classmethod
    def build(cls, ctx: BuildContext) -> "Contextual":
        return cls(ctx.table("tracks"), ctx.recommender("random"), ctx.seed)

    def recommend(self, listen: Listen) -> int | None:
        candidates = self._tracks.get(listen.track)
        if candidates:
            return listen.pick(candidates, self._seed, "contextual")
        return self._fallback.recommend(listen) if self._fallback else None
