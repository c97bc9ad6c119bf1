"""Returns: listeners come back more often after good sessions and leave for good after bad ones.

Each user carries a satisfaction, `mood`, starting at 0 (neutral):

- after a session of time t (recommended tracks only, as in the simulator's output) it moves
  toward log((1 + t) / (1 + reference)) by `smoothing`:
  mood <- (1 - smoothing) * mood + smoothing * log((1 + t) / (1 + reference)),
  where `reference` is the user's own baseline, the session time they expect:
  `reference_session_time * exp(reference_spread * z)`, z ~ N(0, 1) per user;
- on each simulated day the user arrives for min(Poisson(base_rate * exp(sensitivity * mood)),
  max_sessions_per_day) sessions: more after good sessions, fewer after bad ones;
- at the end of each day, a user whose mood is below `leave_threshold` has had one more bad
  day (any other day resets the count); after `leave_after_days` bad days in a row they leave
  for good and never come back.

`base_rate` is the sessions per user per day of a neutral user: `sim.run` sets it so that the
first day expects `--episodes` sessions over all users. The random inputs (z, and one uniform
a day for the count) are given by sim/days.py.
"""
from __future__ import annotations

import math

from sim.config import ReturnsConfig


class Listener:
    """One user's long-term state under the returns model."""

    __slots__ = ("config", "reference_log", "mood", "bad_days", "gone")

    def __init__(self, config: ReturnsConfig, z: float):
        """`z`: the user's standard normal draw that sets their baseline."""
        self.config = config
        self.reference_log = math.log1p(config.reference_session_time
                                        * math.exp(config.reference_spread * z))
        self.mood = 0.0
        self.bad_days = 0
        self.gone = False

    def sessions_today(self, base_rate: float, uniform: float) -> int:
        """min(Poisson(rate), max_sessions_per_day) by inverting its CDF at `uniform` ~ U(0, 1)."""
        if self.gone:
            return 0
        rate = base_rate * math.exp(self.config.sensitivity * self.mood)
        probability = cumulative = math.exp(-rate)
        count = 0
        while uniform >= cumulative and count < self.config.max_sessions_per_day:
            count += 1
            probability *= rate / count
            cumulative += probability
        return count

    def after_session(self, session_time: float) -> None:
        signal = math.log1p(session_time) - self.reference_log
        self.mood += self.config.smoothing * (signal - self.mood)

    def end_of_day(self) -> bool:
        """Count the day; True when the user leaves for good now."""
        if self.gone:
            return False
        self.bad_days = self.bad_days + 1 if self.mood < self.config.leave_threshold else 0
        self.gone = self.bad_days >= self.config.leave_after_days
        return self.gone
