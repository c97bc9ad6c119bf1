"""In-process recommenders the simulator can play against (the `remote` one is sim.remote, which
answers a round of requests of several sessions at once).

An agent answers `recommend(session, track, time)` with the next track id, or None when it
has no usable answer (a failed step), and is told `finish(session, track, time)` when the
session ends (returns False if that could not be delivered).

- DummyAgent: a uniformly random track; the floor every recommender must beat.
- OracleAgent: cheats with the hidden embeddings to measure the ceiling.
- ConsoleAgent: a person types the next track.
"""
from __future__ import annotations

import sys
from typing import Protocol, TextIO

import numpy as np
from scipy.special import expit

from sim.user import Session
from sim.world import World


class Agent(Protocol):
    def recommend(self, session: Session, track: int, time: float) -> int | None: ...

    def finish(self, session: Session, track: int, time: float) -> bool: ...


class DummyAgent:
    def __init__(self, world: World):
        self.n_tracks = world.n_tracks

    def recommend(self, session: Session, track: int, time: float) -> int:
        return int(session.agent_rng.integers(self.n_tracks))

    def finish(self, session: Session, track: int, time: float) -> bool:
        return True


class OracleAgent:
    """Greedy ceiling: the unplayed track the user will listen to longest, nearest first.

    It knows the session interest and the user's bias and sharpness, so it scores tracks by
    the listen time the user would give, round(expit((score - bias) * sharpness)
    * gamma ** artist_plays, 2), breaking ties by the highest score: the nearest unplayed
    track to the interest, moving on to another artist when the discount makes that pay.
    Only the `candidates` nearest tracks (sorted by score) are scored per step. No track
    outside them can be worth more than the undiscounted time of the best score outside, and
    it would lose a tie; when it could win, the candidate set grows fourfold and the step is
    redone, so the choice is exact.
    """

    def __init__(self, world: World, candidates: int):
        self.world = world
        self.initial_candidates = min(candidates, world.n_tracks)
        self._session: Session | None = None

    def _select(self, session: Session, count: int) -> None:
        """Make the `count` nearest tracks the candidates, with the session's plays so far."""
        self._count = count
        order = np.argsort(-self._all_scores, kind="stable")
        top = order[:count]
        self._tracks = top
        self._scores = self._all_scores[top]
        self._artists = self.world.track_artist[top]
        outside = self._all_scores[order[count]] if count < len(order) else -np.inf
        self._outside_ceiling = self._time(session, outside, 0)
        self._played = np.zeros(count, dtype=bool)
        self._plays = np.zeros(count, dtype=np.int64)
        self._seen = 0

    @staticmethod
    def _time(session: Session, scores, plays):
        """The listen time the user would give (vectorised sim.user.listen_time)."""
        return np.round(expit((scores - session.bias) * session.sharpness)
                        * session.gamma ** plays, 2)

    def _catch_up(self, session: Session) -> None:
        """Fold the tracks played since the last call into the candidate masks."""
        for played in session.history[self._seen:]:
            self._played |= self._tracks == played
            self._plays += self._artists == self.world.track_artist[played]
        self._seen = len(session.history)

    def recommend(self, session: Session, track: int, time: float) -> int:
        if session is not self._session:
            self._session = session
            self._all_scores = self.world.embeddings @ session.interest
            if session.boost is not None:  # trending tracks: the user's own appeal of them
                self._all_scores = self._all_scores + session.boost
            self._select(session, self.initial_candidates)
        while True:
            self._catch_up(session)
            value = self._time(session, self._scores, self._plays)
            value[self._played] = -1.0
            best = int(np.argmax(value))  # the first maximum: the highest score among ties
            if value[best] >= self._outside_ceiling or self._count == self.world.n_tracks:
                return int(self._tracks[best])
            self._select(session, min(4 * self._count, self.world.n_tracks))

    def finish(self, session: Session, track: int, time: float) -> bool:
        self._session = None
        return True


class ConsoleAgent:
    """A person at the keyboard picks each next track (Enter: a random one, q: end)."""

    def __init__(self, world: World, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout):
        self.world = world
        self.stdin = stdin
        self.stdout = stdout

    def _describe(self, track: int) -> str:
        artist = self.world.artist_names[self.world.track_artist[track]]
        return f"#{track} {artist} - {self.world.titles[track]}"

    def recommend(self, session: Session, track: int, time: float) -> int | None:
        print(f"user {session.user} listened {self._describe(track)} for {time:.2f} "
              f"(budget {session.budget})", file=self.stdout)
        while True:
            print(f"next track id 0..{self.world.n_tracks - 1} (Enter: random, q: end)> ",
                  end="", file=self.stdout, flush=True)
            answer = self.stdin.readline()
            if answer == "" or answer.strip() == "q":
                raise KeyboardInterrupt  # end of input: stop the run cleanly
            answer = answer.strip()
            if answer == "":
                return int(session.agent_rng.integers(self.world.n_tracks))
            if answer.isdigit() and int(answer) < self.world.n_tracks:
                return int(answer)
            print(f"'{answer}' is not a track id in 0..{self.world.n_tracks - 1}",
                  file=self.stdout)

    def finish(self, session: Session, track: int, time: float) -> bool:
        print(f"user {session.user} left after {self._describe(track)} ({time:.2f}); "
              f"session time {session.session_time:.2f}", file=self.stdout)
        return True
