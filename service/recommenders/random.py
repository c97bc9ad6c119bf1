"""Random: any catalog track, uniformly (the day-0 recommender, and the last fallback)."""
from __future__ import annotations

from contract.catalog import Catalog
from service.recommenders import Listen
from service.recommenders.registry import BuildContext, register


@register("random")
class Random:
    def __init__(self, catalog: Catalog, seed: int):
        self._tracks, self._seed = catalog.track_ids, seed

    @classmethod
    def build(cls, ctx: BuildContext) -> "Random":
        return cls(ctx.catalog, ctx.seed)

    def recommend(self, listen: Listen) -> int:
        return listen.pick(self._tracks, self._seed, "random")
