"""Recommenders: one module each, all behind `Recommender.recommend(listen) -> track | None`.

`None` means "nothing to recommend from my source"; a recommender with a fallback passes the
listen on instead. The chain always ends in a recommender that never returns None (Random,
StickyArtist), so the service always answers with a track.

`SPECS` is what the experiments config may say about each recommender: its table slots
(slot -> table kind, required?) and its parameters. serving.py builds recommenders from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, TypeVar

from service.randomness import pick
from service.stores import History

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Listen:
    """What a recommender sees of a /next request."""
    user: int
    track: int          # the track just listened to
    time: float         # the fraction of it listened
    history: History    # the open session, this track last

    def pick(self, items: Sequence[T], seed: int, salt: str) -> T:
        """A random element fixed by (seed, salt, user, track, position in session)."""
        return pick(items, seed, salt, self.user, self.track, len(self.history))


class Recommender(Protocol):
    def recommend(self, listen: Listen) -> int | None: ...


@dataclass(frozen=True)
class Spec:
    tables: dict[str, tuple[str, bool]]   # slot -> (table kind, required)
    params: tuple[str, ...]               # parameter names, values from config


SPECS: dict[str, Spec] = {
    "random": Spec({}, ()),
    "toppop": Spec({"toppop": ("toppop", True)}, ("top_k",)),
    "sticky_artist": Spec({}, ("anchor",)),
    "indexed": Spec({"users": ("users", True), "toppop": ("toppop", False)}, ()),
    "contextual": Spec({"tracks": ("tracks", True)}, ()),
    "contextual_updated": Spec({"nn": ("tracks", True), "users": ("users", True),
                                "toppop": ("toppop", True)},
                               ("min_time", "low_mean_time", "window")),
}
