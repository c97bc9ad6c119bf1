"""Team-draft interleaving of two recommenders inside one session (Radlinski, Kurup and Joachims
2008, "How does clickthrough data reflect retrieval quality?"), for a service that answers one
track at a time.

A session's requests are taken in consecutive pairs (positions 0-1, 2-3, ...). In each pair each
recommender, team "a" and team "b", answers once; which goes first is a fair coin per pair, a
hash of (seed, user, the session's first track, pair) like every random choice of the service,
so a replay gets the same teams. Each recommender sees the whole session so far, whoever served
it, and no team serves a track already played: a played or missing answer is replaced by a
random unplayed track, still credited to the team that failed. The user's listening decides:
each team's credit is the listen time of the tracks it served (analysis/interleaving.py).
"""
from __future__ import annotations

from contract.events import TEAMS
from contract.catalog import Catalog
from service.randomness import pick
from service.recommenders import Listen, Recommender, unplayed_track


class Interleaved:
    """Two recommenders drafted into one session; a Recommender itself, whose `draft` also says
    which team answered."""

    def __init__(self, a: Recommender, b: Recommender, catalog: Catalog, seed: int):
        self._teams = {"a": a, "b": b}
        self._tracks, self._seed = catalog.track_ids, seed

    def team(self, listen: Listen) -> str:
        """The team answering this request: the pair's coin decides who goes first."""
        position = len(listen.history) - 1
        # Hashed with the session's first track and the pair's index (not the request's track
        # and position, as recommenders' draws are): both requests of a pair see the same coin.
        leader = pick((0, 1), self._seed, "team-draft", listen.user, listen.history[0][0], position // 2)
        return TEAMS[leader ^ (position % 2)]

    def draft(self, listen: Listen) -> tuple[int, str]:
        team = self.team(listen)
        answer = self._teams[team].recommend(listen)
        if answer is None or any(answer == track for track, _ in listen.history):
            answer = unplayed_track(listen, self._tracks, self._seed, f"team-{team}-unplayed")
        return answer, team

    def recommend(self, listen: Listen) -> int:
        return self.draft(listen)[0]
