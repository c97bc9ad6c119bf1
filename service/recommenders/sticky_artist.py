"""StickyArtist: a random track by the same artist, the anchor being the previous track
(anchor: previous) or the session's first track, which the user chose (anchor: first).
Tracks already played in the session are avoided while others remain, since a replayed
track is listened for time 0."""
from __future__ import annotations

from typing import Literal

from contract.catalog import Catalog
from service.recommenders import Listen
from service.recommenders.registry import BuildContext, Params, register


@register("sticky_artist")
class StickyArtist:
    class Params(Params):
        anchor: Literal["previous", "first"] = "previous"

    def __init__(self, catalog: Catalog, anchor: str, seed: int):
        self._catalog, self._anchor, self._seed = catalog, anchor, seed

    @classmethod
    def build(cls, ctx: BuildContext) -> "StickyArtist":
        return cls(ctx.catalog, ctx.params.anchor, ctx.seed)

    def recommend(self, listen: Listen) -> int:
        anchor = listen.history[0][0] if self._anchor == "first" else listen.track
        # A session begun before a reload may start with a track the new catalog lacks.
        artist = self._catalog.artist_of.get(anchor) or self._catalog.artist_of[listen.track]
        tracks = self._catalog.tracks_by_artist[artist]
        played = {track for track, _ in listen.history}
        fresh = [track for track in tracks if track not in played]
        return listen.pick(fresh or tracks, self._seed, "sticky_artist")
