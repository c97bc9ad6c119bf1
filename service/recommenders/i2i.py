"""I2I: item-to-item recommendations over any track-keyed neighbour table, by the course's
rule (its 2026 homework control is this rule over SASRec neighbours).

Each request draws an anchor among the session's last `history` listens (the service keeps a
user's open session), with probability proportional to the time each was listened, and answers
the anchor's first neighbour not yet played in the session. An anchor listened long is the
best evidence of taste; drawing it (rather than always taking the best one) keeps a session
from circling one neighbourhood. When no listen has time above 0, the anchor is the track just
listened; when the anchor has no row or no unplayed neighbour, the `fallback` answers, and if
its answer was played already, a random unplayed catalog track does: a replayed track is
listened for time 0.

The table may come from a job of a plan (jobs/item2vec.py, jobs/als.py's neighbours) or from a
file of the user's own, e.g. neighbours of their own sequence model.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from contract.catalog import Catalog
from service.randomness import pick_weighted
from service.recommenders import Listen, Recommender, unplayed_track
from service.recommenders.registry import BuildContext, Params, Slot, register
from service.stores import KeyedTable


@register("i2i")
class I2I:
    tables = {"neighbours": Slot("tracks"), "toppop": Slot("toppop", required=False)}

    class Params(Params):
        history: int = Field(10, ge=1, le=100, description="the session's last listens an anchor is drawn from")
        fallback: Literal["random", "toppop", "sticky_artist"] = Field(
            "random", description="answers when the anchor has no unplayed neighbour (toppop needs the toppop table)")

    def __init__(self, neighbours: KeyedTable, fallback: Recommender, catalog: Catalog, history: int,
                 seed: int):
        self._neighbours, self._fallback, self._history, self._seed = neighbours, fallback, history, seed
        self._tracks = catalog.track_ids

    @classmethod
    def check_tables(cls, params: "I2I.Params", slots: set[str]) -> str | None:
        if params.fallback == "toppop" and "toppop" not in slots:
            return "fallback toppop needs a `toppop` table: add `toppop: <day>/<file>`"
        return None

    @classmethod
    def build(cls, ctx: BuildContext) -> "I2I":
        return cls(ctx.table("neighbours"), ctx.recommender(ctx.params.fallback, tables={"toppop": "toppop"}),
                   ctx.catalog, ctx.params.history, ctx.seed)

    def anchor(self, listen: Listen) -> int:
        """The track whose neighbours answer: drawn from the recent listens by listen time."""
        recent = listen.history[-self._history:]
        weights = [max(time, 0.0) for _, time in recent]
        if not any(weights):
            return listen.track
        return pick_weighted([track for track, _ in recent], weights, self._seed, "i2i",
                             listen.user, listen.track, len(listen.history))

    def recommend(self, listen: Listen) -> int:
        played = {track for track, _ in listen.history}
        for neighbour in self._neighbours.get(self.anchor(listen)) or ():
            if neighbour not in played:
                return neighbour
        answer = self._fallback.recommend(listen)
        if answer is not None and answer not in played:
            return answer
        return unplayed_track(listen, self._tracks, self._seed, "i2i-unplayed")
