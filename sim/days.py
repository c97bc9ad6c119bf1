"""Who listens on each simulated day, and when: the schedule of a multi-day run.

- Returns off: day d plays `episodes` sessions of users drawn uniformly, as a one-day run
  does (day 0 draws exactly the users a one-day run with the same seed draws).
- Returns on (sim/returns.py): every user who has not left draws their sessions of the day
  from their own satisfaction; `episodes` sets the neutral rate, episodes / users per user
  per day, so the first day expects about `episodes` sessions.

Start times come from sim/calendar.py. All of a user's draws (baseline, arrivals, start times)
come from their own arrival stream, derived from (seed, user), and a worker process owns the
users with `user % processes == index`: same seed, same days with any number of processes.
"""
from __future__ import annotations

import numpy as np

from sim.calendar import session_starts
from sim.config import SimConfig
from sim.returns import Listener


def episode_users(seed: int, episodes: int, n_users: int, day: int = 0) -> np.ndarray:
    """The user of each episode of a day, uniform over users, from the run seed alone."""
    key = (0,) if day == 0 else (0, day)  # day 0 is a one-day run's draw
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
    return rng.integers(n_users, size=episodes)


def arrival_stream(seed: int, user: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, user)))


class Schedule:
    """The sessions of the users owned by one worker (`part` = (index, processes)), day by day."""

    def __init__(self, config: SimConfig, seed: int, episodes: int, n_users: int,
                 part: tuple[int, int]):
        self.config, self.seed, self.episodes, self.n_users = config, seed, episodes, n_users
        index, processes = part
        self.users = range(index, n_users, processes)
        self.arrivals: dict[int, np.random.Generator] = {}
        self.listeners: dict[int, Listener] = {}
        if config.returns.enabled:
            self.base_rate = episodes / n_users
            for user in self.users:
                self.listeners[user] = Listener(config.returns, self._arrival(user))

    def _arrival(self, user: int) -> np.random.Generator:
        if user not in self.arrivals:
            self.arrivals[user] = arrival_stream(self.seed, user)
        return self.arrivals[user]

    def sessions_today(self, day: int) -> list[tuple[int, int]]:
        """(user, sessions) for every owned user with at least one session today, by user."""
        if self.listeners:
            counts = ((user, listener.sessions_today(self.base_rate))
                      for user, listener in self.listeners.items())
            return [(user, count) for user, count in counts if count]
        counts = np.bincount(episode_users(self.seed, self.episodes, self.n_users, day),
                             minlength=self.n_users)
        return [(user, int(counts[user])) for user in self.users if counts[user]]

    def start_times(self, user: int, day_start: int, sessions: int) -> list[int]:
        return session_starts(self.config.calendar, day_start, sessions, self._arrival(user))

    def after_session(self, user: int, session_time: float) -> None:
        if self.listeners:
            self.listeners[user].after_session(session_time)

    def end_of_day(self) -> list[int]:
        """The users who leave for good at the end of this day."""
        return [user for user, listener in self.listeners.items() if listener.end_of_day()]
