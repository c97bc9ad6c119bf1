"""Taste: a session-aware walk over the artist neighbourhoods that jobs/taste.py learns from
co-listening (jobs/README.md, "taste").

The table holds, for each artist, the artists listened long in the same sessions, strongest
first; it is keyed by the artist's first catalog track and lists one track per neighbour
(`row_key`). Each request looks at the whole session so far:

- the first recommendation replays the first track's artist (the closest to what the user chose);
- candidates: the fresh (not yet played) artists of the first track's row, in its order. With
  `anchors` > 0 (off by default; jobs/README.md has its measured gain and cost), the rows of
  the last `anchors` recommended tracks listened above the session's median time join, each
  weighted by that excess, the first row by `first_weight`; an artist at rank r of a row gets
  weight / (1 + r / rank_scale), summed over the rows;
- artist rotation against the discount a user gives an artist's next track: replaying an
  artist already played is valued at its last time times `repeat_factor`, a fresh artist at
  the session's mean time on fresh artists so far (`fresh_prior` before any); the better wins;
- never a track already played in the session; when no row gives a fresh artist, the best
  replay, else a random unplayed track.

In the Redis store the row read is not the one prefetched with the session (that is the
previous track's): it is one HGET, then served from the store's cache of recent rows.
"""
from __future__ import annotations

from statistics import median
from typing import Iterable

from pydantic import Field

from contract.catalog import Catalog
from service.recommenders import Listen
from service.recommenders.registry import BuildContext, Params, Slot, register
from service.stores import KeyedTable


def row_key(catalog: Catalog, artist: str) -> int:
    """The track an artist's row is stored under: its first track in the catalog."""
    return catalog.tracks_by_artist[artist][0]


class ArtistWalkParams(Params):
    """The parameters every walk over artist rows has (Taste, Scenes); each adds its anchors."""
    first_weight: float = Field(1.0, ge=0, description="weight of the first track's row")
    repeat_factor: float = Field(0.8, ge=0, le=1,
                                 description="expected time of an artist's next track / its last time")
    fresh_prior: float = Field(0.8, ge=0, le=1,
                               description="expected time of a fresh artist before the session shows one")


class ArtistWalk:
    """What a session-aware walk over an artist-row table shares (Taste, Scenes): the table of
    the slot `slot` (one row per artist, keyed by `row_key`), an artist's row, its first
    unplayed track, a random unplayed track (its draw salted by `slot`)."""
    slot: str

    def __init__(self, table: KeyedTable, catalog: Catalog, params: ArtistWalkParams, seed: int):
        self._table, self._catalog, self._p, self._seed = table, catalog, params, seed

    @classmethod
    def build(cls, ctx: BuildContext):
        return cls(ctx.table(cls.slot), ctx.catalog, ctx.params, ctx.seed)

    def _row(self, artist: str | None):
        return (self._table.get(row_key(self._catalog, artist)) if artist is not None else None) or ()

    def _unplayed(self, artist: str, played: set[int]) -> int | None:
        return next((t for t in self._catalog.tracks_by_artist[artist] if t not in played), None)

    def _random_unplayed(self, listen: Listen, played: set[int]) -> int:
        """The first unplayed catalog track from a random place (request-derived, like Random)."""
        ids = self._catalog.track_ids
        start = listen.pick(range(len(ids)), self._seed, self.slot)
        return next((ids[(start + i) % len(ids)] for i in range(len(ids))
                     if ids[(start + i) % len(ids)] not in played), ids[start])


@register("taste")
class Taste(ArtistWalk):
    slot = "taste"
    tables = {slot: Slot("tracks")}

    class Params(ArtistWalkParams):
        anchors: int = Field(0, ge=0, le=50, description="recent recommended tracks used as anchors")
        rank_scale: float = Field(10.0, gt=0, description="an artist at rank r of a row weighs 1 / (1 + r / rank_scale)")

    def recommend(self, listen: Listen) -> int:
        p, artist_of = self._p, self._catalog.artist_of
        history = listen.history
        played = {track for track, _ in history}
        last_time: dict[str, float] = {}   # artist -> time of its latest track in the session
        for track, time in history:
            last_time[artist_of.get(track)] = time
        first = artist_of.get(history[0][0])
        if len(history) == 1 and first is not None:
            replay = self._unplayed(first, played)
            if replay is not None:
                return replay
        fresh = next((a for a in self._ranked(history, first) if a not in last_time), None)
        fresh_times = [time for (track, time), seen in zip(history[1:], _first_plays(history, artist_of)) if seen]
        fresh_value = sum(fresh_times) / len(fresh_times) if fresh_times else p.fresh_prior
        for artist, time in sorted(last_time.items(), key=lambda item: -item[1]):
            if artist is None or (fresh is not None and time * p.repeat_factor < fresh_value):
                break
            replay = self._unplayed(artist, played)
            if replay is not None:
                return replay
        if fresh is not None:
            return self._unplayed(fresh, played)
        return self._random_unplayed(listen, played)

    def _ranked(self, history, first: str | None) -> Iterable[str]:
        """Candidate artists, best first: the first artist's row in its order, or with anchors,
        by summed, rank-decayed weight of the anchors' rows."""
        p, artist_of = self._p, self._catalog.artist_of
        anchors = [(first, p.first_weight)] if first is not None else []
        recommended = history[1:]
        if recommended and p.anchors:
            baseline = median(time for _, time in recommended)
            anchors += [(artist_of.get(track), time - baseline) for track, time in recommended[-p.anchors:]
                        if time > baseline]
        if len(anchors) == 1 and anchors[0][1] > 0:   # one row: already ranked, read it lazily
            return (artist_of[track] for track in self._row(anchors[0][0]))
        scores: dict[str, float] = {}
        for artist, weight in anchors:
            for rank, track in enumerate(self._row(artist)):
                neighbour = artist_of[track]
                scores[neighbour] = scores.get(neighbour, 0.0) + weight / (1 + rank / p.rank_scale)
        return sorted((a for a in scores if scores[a] > 0), key=scores.get, reverse=True)


def _first_plays(history, artist_of) -> list[bool]:
    """For each recommended track of the session: was it its artist's first play?"""
    seen = {artist_of.get(history[0][0])}
    flags = []
    for track, _ in history[1:]:
        artist = artist_of.get(track)
        flags.append(artist not in seen)
        seen.add(artist)
    return flags
