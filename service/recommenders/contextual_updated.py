"""ContextualUpdated, the treatment, with every heuristic of its author (docs/DESIGN.md):

1. the mean time of the last `window` tracks is below `low_mean_time`: the session is going
   badly, go to the artist of the session's first track (the user chose it);
2. the previous track's time is below `min_time`: the chain went wrong, skip the NN table and
   ask the fallback (Indexed over the SVD table, whose own fallback is TopPop);
3. otherwise Contextual over the NN table, then the fallback;
4. nothing found anywhere: the first track's artist again.
"""
from __future__ import annotations

from pydantic import Field

from service.recommenders import Listen, Recommender
from service.recommenders.contextual import Contextual
from service.recommenders.registry import BuildContext, Params, Slot, register


@register("contextual_updated")
class ContextualUpdated:
    tables = {"nn": Slot("tracks"), "users": Slot("users"), "toppop": Slot("toppop")}

    class Params(Params):
        min_time: float = Field(0.1, ge=0, le=1, description="previous time below this: skip the NN table")
        low_mean_time: float = Field(0.2, ge=0, le=1,
                                     description="mean of the last `window` times below this: sticky artist")
        window: int = Field(3, ge=1)

    def __init__(self, main: Recommender, fallback: Recommender, sticky_first_artist: Recommender,
                 min_time: float, low_mean_time: float, window: int):
        self._main, self._fallback, self._sticky = main, fallback, sticky_first_artist
        self._min_time, self._low_mean_time, self._window = min_time, low_mean_time, window

    @classmethod
    def build(cls, ctx: BuildContext) -> "ContextualUpdated":
        p = ctx.params
        fallback = ctx.recommender("indexed", tables={"users": "users", "toppop": "toppop"})
        return cls(Contextual(ctx.table("nn"), None, ctx.seed), fallback,
                   ctx.recommender("sticky_artist", {"anchor": "first"}),
                   p.min_time, p.low_mean_time, p.window)

    def recommend(self, listen: Listen) -> int:
        recent = listen.history[-self._window:]
        if len(recent) == self._window and sum(t for _, t in recent) / self._window < self._low_mean_time:
            return self._sticky.recommend(listen)
        track = None
        if listen.time >= self._min_time:
            track = self._main.recommend(listen)
        if track is None:
            track = self._fallback.recommend(listen)
        return self._sticky.recommend(listen) if track is None else track
