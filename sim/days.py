"""Who listens on each simulated day, and when: the schedule of a multi-day run.

- Returns off: day d plays `episodes` sessions of users drawn uniformly, as a one-day run
  does (day 0 draws exactly the users a one-day run with the same seed draws).
- Returns on (sim/returns.py): every user who has not left draws their sessions of the day
  from their own satisfaction; `episodes` sets the neutral rate, episodes / users per user
  per day, so the first day expects about `episodes` sessions.

Session start times are uniform in the day's first `calendar.day_hours` hours (sim/calendar.py).
The random inputs are drawn for every user of the world at once, from streams of the run seed
alone (the users' baselines; per day, the episodes' users and start times, or each user's
count and start times), and a worker reads its own users' values. So a user's days never
depend on which process plays them, and every user's sessions use the user's own streams as
in a one-day run (sim/run.py): same seed, same days with any number of processes.
"""
from __future__ import annotations

import numpy as np

from sim.config import SimConfig
from sim.returns import Listener


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def episode_users(seed: int, episodes: int, n_users: int, day: int = 0) -> np.ndarray:
    """The user of each episode of a day, uniform over users, from the run seed alone."""
    key = (0,) if day == 0 else (0, day)  # day 0 is a one-day run's draw
    return _stream(seed, *key).integers(n_users, size=episodes)


class Schedule:
    """The sessions of the users owned by one worker (`part` = (index, processes)), day by day."""

    def __init__(self, config: SimConfig, seed: int, episodes: int, n_users: int,
                 part: tuple[int, int]):
        self.config, self.seed, self.episodes, self.n_users = config, seed, episodes, n_users
        index, processes = part
        self.users = range(index, n_users, processes)
        self.listeners: dict[int, Listener] = {}
        if config.returns.enabled:
            self.base_rate = episodes / n_users
            baselines = _stream(seed, 3).standard_normal(n_users).tolist()
            self.listeners = {user: Listener(config.returns, baselines[user])
                              for user in self.users}

    def sessions_today(self, day: int) -> list[tuple[int, list[float]]]:
        """(user, sorted start times in hours into the day) of every owned user who comes
        today, by user."""
        hours = self.config.calendar.day_hours
        rng = _stream(self.seed, 3, day + 1)
        if self.listeners:
            cap = self.config.returns.max_sessions_per_day
            # per user: the uniform of the day's count, then those of the start times
            draws = rng.random((self.n_users, 1 + cap)).tolist()
            plan = []
            for user, listener in self.listeners.items():
                uniforms = draws[user]
                count = listener.sessions_today(self.base_rate, uniforms[0])
                if count:
                    plan.append((user, sorted(u * hours for u in uniforms[1:1 + count])))
            return plan
        users = episode_users(self.seed, self.episodes, self.n_users, day)
        starts = rng.random(self.episodes) * hours
        by_user: dict[int, list[float]] = {}
        index, processes = self.users.start, self.users.step
        for user, start in zip(users.tolist(), starts.tolist()):
            if user % processes == index:
                by_user.setdefault(user, []).append(start)
        return [(user, sorted(by_user[user])) for user in sorted(by_user)]

    def after_session(self, user: int, session_time: float) -> None:
        if self.listeners:
            self.listeners[user].after_session(session_time)

    def end_of_day(self) -> list[int]:
        """The users who leave for good at the end of this day."""
        return [user for user, listener in self.listeners.items() if listener.end_of_day()]
