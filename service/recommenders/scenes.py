"""Scenes: a session-aware walk through the artist groups jobs/scenes.py learns from
co-listening (jobs/README.md, "scenes").

The table holds, for each artist, the artists of its scene (most similar first, one track each:
the one listened long most often), keyed by the artist's first catalog track (`row_key`). A
session is one taste: its first track was chosen by the user, and the times of what followed say
which scene that taste is. Each request looks at the whole session so far:

- candidate artists, fresh ones only (the user discounts an artist's every further track): an
  artist at rank r of an anchor's row gets weight / (1 + r / rank_scale), summed over anchors.
  The anchors are the first track's artist (weight `first_weight`) and the artists of the last
  `anchors` recommended tracks listened above the session's mean, each weighted by its excess:
  a poorly placed first artist is corrected by what the user actually listened to;
- artist rotation: replaying the artist listened longest is valued at its last time times
  `repeat_factor`, a fresh artist at the session's mean time on fresh artists (`fresh_prior`
  before any); the better wins. The first track counts as listened in full, so the first
  recommendation replays its artist (the user chose it) unless `fresh_prior` > `repeat_factor`;
- never a track already played in the session; a fresh artist plays its row track, else its
  first unplayed one; with no candidate left, the best replay, else a random unplayed track.
"""
from __future__ import annotations

from pydantic import Field

from service.recommenders import Listen
from service.recommenders.registry import Slot, register
from service.recommenders.taste import ArtistWalk, ArtistWalkParams


@register("scenes")
class Scenes(ArtistWalk):
    slot = "scenes"
    tables = {slot: Slot("tracks")}

    class Params(ArtistWalkParams):
        anchors: int = Field(6, ge=0, le=50, description="recent recommended tracks that may join as anchors")
        rank_scale: float = Field(20.0, gt=0, description="an artist at rank r of a row weighs 1 / (1 + r / rank_scale)")

    def recommend(self, listen: Listen) -> int:
        p, artist_of = self._p, self._catalog.artist_of
        history = listen.history
        played = {track for track, _ in history}
        first = artist_of.get(history[0][0])
        last_time: dict[str | None, float] = {}     # artist -> time of its latest track
        fresh_times: list[float] = []               # times of recommended first plays of an artist
        for i, (track, time) in enumerate(history):
            artist = artist_of.get(track)
            if i and artist not in last_time:
                fresh_times.append(time)
            last_time[artist] = time
        fresh = self._best_fresh(history, first, last_time)
        fresh_value = sum(fresh_times) / len(fresh_times) if fresh_times else p.fresh_prior
        for artist, time in sorted(last_time.items(), key=lambda item: -item[1]):
            if artist is None or (fresh is not None and time * p.repeat_factor < fresh_value):
                break
            replay = self._unplayed(artist, played)
            if replay is not None:
                return replay
        if fresh is not None:
            artist, track = fresh
            return track if track not in played else self._unplayed(artist, played) or self._random_unplayed(listen, played)
        return self._random_unplayed(listen, played)

    def _best_fresh(self, history, first: str | None, last_time: dict) -> tuple[str, int] | None:
        """(artist, its row track) of the best-scored artist not yet played, or None."""
        p, artist_of = self._p, self._catalog.artist_of
        anchors = [(first, p.first_weight)] if first is not None and p.first_weight > 0 else []
        recommended = history[1:]
        if recommended and p.anchors:
            mean = sum(time for _, time in recommended) / len(recommended)
            anchors += [(artist_of.get(track), time - mean) for track, time in recommended[-p.anchors:]
                        if time > mean]
        scores: dict[str, float] = {}
        tracks: dict[str, int] = {}
        for artist, weight in anchors:
            for rank, track in enumerate(self._row(artist)):
                neighbour = artist_of[track]
                if neighbour in last_time:
                    continue
                scores[neighbour] = scores.get(neighbour, 0.0) + weight / (1 + rank / p.rank_scale)
                tracks.setdefault(neighbour, track)
        if not scores:
            return None
        best = max(scores, key=scores.get)
        return best, tracks[best]

