"""The simulated listener (docs/DESIGN.md, "The simulated user"), one session at a time.

- A session starts on one of the user's interest tracks chosen at random: its embedding is
  the session interest, and the first track is a random one of its `interest_neighbours`
  nearest tracks (precomputed by sim.world), listened with time 1.0.
- A recommended track r is listened for `listen_time(...)`: 0 if r was already played in the
  session, else round(expit((dot(e_r, interest) - bias) * sharpness) * gamma ** plays, 2)
  where `plays` counts the session's tracks by r's artist so far (the first track included).
- After each track the budget drops by 1 with probability 1 - time; at 0 the session is over.

Long-term simulations (sim/calendar.py, sim/trending.py) give a session the user's `clock`
of the day, which stamps requests with the simulated time, and a `boost` of each track's score
for the day's trending tracks; both are None otherwise, and the model is exactly the one above.

Randomness: the user's own draws (session start, budget drops) come from `rng`; agents that
need randomness draw from `agent_rng`, so a user's draws never depend on the agent.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from sim.calendar import Clock
from sim.world import World


def listen_time(score: float, bias: float, sharpness: float, gamma: float,
                artist_plays: int) -> float:
    """Fraction of a new (not yet played) track listened, rounded to 2 decimals."""
    return round(float(expit((score - bias) * sharpness)) * gamma ** artist_plays, 2)


class Session:
    """One user's session: what was played, the remaining budget, the running totals."""

    __slots__ = ("user", "interest", "bias", "sharpness", "gamma", "budget", "first_track",
                 "history", "played", "artist_plays", "session_time", "tracks",
                 "failed_steps", "max_tracks", "truncated", "rng", "agent_rng", "clock", "boost",
                 "_model")

    def __init__(self, model: "UserModel", user: int, interest_track: int, first_track: int,
                 rng: np.random.Generator, agent_rng: np.random.Generator, max_tracks: int,
                 clock: Clock | None = None, boost: np.ndarray | None = None):
        world = model.world
        self._model = model
        self.user = user
        self.interest = world.embeddings[interest_track]
        self.bias = float(world.consume_bias[user])
        self.sharpness = float(world.consume_sharpness[user])
        self.gamma = world.artist_discount_gamma
        self.budget = world.session_budget
        self.first_track = first_track
        self.history = [first_track]          # every track played, the first one included
        self.played = {first_track}
        self.artist_plays = {int(world.track_artist[first_track]): 1}
        self.session_time = 0.0               # sum of listen times after the first track
        self.tracks = 0                       # recommended tracks listened
        self.failed_steps = 0                 # requests that got no usable answer
        self.max_tracks = max_tracks
        self.truncated = False
        self.rng = rng
        self.agent_rng = agent_rng
        self.clock = clock                    # simulated time (multi-day runs), else None
        self.boost = boost                    # score boost per track (trending), else None

    @property
    def over(self) -> bool:
        return self.budget <= 0 or self.truncated

    def listen(self, track: int) -> float:
        """The user listens to recommended `track` (a valid id); returns the time listened."""
        artist = int(self._model.world.track_artist[track])
        plays = self.artist_plays.get(artist, 0)
        if track in self.played:
            time = 0.0  # users don't want the same track twice in a session
        else:
            score = float(self._model.world.embeddings[track] @ self.interest)
            if self.boost is not None:
                score += float(self.boost[track])
            time = listen_time(score, self.bias, self.sharpness, self.gamma, plays)
        self.history.append(track)
        self.played.add(track)
        self.artist_plays[artist] = plays + 1
        self.session_time += time
        self.tracks += 1
        self._spend_budget(time)
        if self.tracks >= self.max_tracks and not self.over:
            self.truncated = True
        return time

    def fail(self) -> None:
        """A step where the recommender gave no usable track: time 0, the session goes on."""
        self.failed_steps += 1
        self._spend_budget(0.0)

    def _spend_budget(self, time: float) -> None:
        if self.rng.random() > time:
            self.budget -= 1

    def result(self, episode: int) -> dict:
        return {"user": self.user, "episode": episode,
                "session_time": round(self.session_time, 2), "tracks": self.tracks,
                "failed_steps": self.failed_steps}


class UserModel:
    """Starts sessions for the world's users."""

    def __init__(self, world: World, max_session_tracks: int):
        self.world = world
        self.max_session_tracks = max_session_tracks

    def start_session(self, user: int, rng: np.random.Generator,
                      agent_rng: np.random.Generator, clock: Clock | None = None,
                      boost: np.ndarray | None = None) -> Session:
        if not 0 <= user < self.world.n_users:
            raise ValueError(f"user {user} is not in 0..{self.world.n_users - 1}")
        interests = self.world.interests[user]
        which = int(rng.integers(len(interests)))
        neighbours = self.world.interest_neighbours[user, which]
        first_track = int(neighbours[rng.integers(len(neighbours))])
        return Session(self, user, int(interests[which]), first_track, rng, agent_rng,
                       self.max_session_tracks, clock, boost)
