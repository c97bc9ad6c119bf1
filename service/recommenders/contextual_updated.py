"""ContextualUpdated, the treatment, with every heuristic of its author (DESIGN.md):

1. the mean time of the last `window` tracks is below `low_mean_time`: the session is going
   badly, go to the artist of the session's first track (the user chose it);
2. the previous track's time is below `min_time`: the chain went wrong, skip the NN table and
   ask the fallback (Indexed over the SVD table, whose own fallback is TopPop);
3. otherwise Contextual over the NN table, then the fallback;
4. nothing found anywhere: the first track's artist again.
"""
from __future__ import annotations

from service.recommenders import Listen, Recommender


class ContextualUpdated:
    def __init__(self, main: Recommender, fallback: Recommender, sticky_first_artist: Recommender,
                 min_time: float, low_mean_time: float, window: int):
        self._main, self._fallback, self._sticky = main, fallback, sticky_first_artist
        self._min_time, self._low_mean_time, self._window = min_time, low_mean_time, window

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
