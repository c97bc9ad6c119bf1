"""Recommenders: one module each, all behind `Recommender.recommend(listen) -> track | None`.

`None` means "nothing to recommend from my source"; a recommender with a fallback passes the
listen on instead. The chain always ends in a recommender that never returns None (Random,
StickyArtist), so the service always answers with a track.

Each module registers its recommender with what a config may say about it (registry.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, TypeVar

from service.randomness import pick
from service.stores import History

T = TypeVar("T")


@dataclass(slots=True)  # not frozen: a frozen dataclass's init is slower, and it runs per /next
class Listen:
    """What a recommender sees of a /next request (read only by convention)."""
    user: int
    track: int          # the track just listened to
    time: float         # the fraction of it listened
    history: History    # the open session, this track last

    def pick(self, items: Sequence[T], seed: int, salt: str) -> T:
        """A random element fixed by (seed, salt, user, track, position in session)."""
        return pick(items, seed, salt, self.user, self.track, len(self.history))


class Recommender(Protocol):
    def recommend(self, listen: Listen) -> int | None: ...


def unplayed_track(listen: Listen, tracks: Sequence[int], seed: int, salt: str) -> int:
    """A random track of `tracks` not played in the session (a replayed track is listened for
    time 0): a few salted draws, as sessions are far shorter than the catalog, then the whole
    list filtered if they all hit."""
    played = {track for track, _ in listen.history}
    for attempt in range(8):
        track = listen.pick(tracks, seed, f"{salt}-{attempt}")
        if track not in played:
            return track
    fresh = [track for track in tracks if track not in played]
    return listen.pick(fresh or tracks, seed, salt)
