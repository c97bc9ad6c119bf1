"""Simulated days: when each session starts and the timestamp of each request.

A run of `--days N` plays calendar days (UTC) from `calendar.start_date`. A user's sessions of
a day start at uniform random times in the day's first `calendar.day_hours` hours (drawn from
the user's own arrival stream, sorted), and each never starts before the previous one ended.
Within a session the user's clock moves on by `step_seconds + time * track_seconds` per track
(the first track counts as fully listened), so a request is stamped when the user has finished
listening to the track it reports.

A user's timestamps strictly increase and never leave their day: past `day end - 10 minutes`
the clock moves 1 ms per request only (a user would need 600,000 requests in a day to pass the
day's end). So a log cut by UTC calendar day of the event timestamps cuts exactly at the
simulated days, and a user's sessions on different days can never share a millisecond.
"""
from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np

from sim.config import CalendarConfig

DAY_MS = 86_400_000
# the last part of a day where the clock only moves 1 ms per request (see the module docstring)
_SQUEEZE_MS = 600_000


def day_start_ms(start_date: date, day: int) -> int:
    """Milliseconds since the epoch at 00:00 UTC of simulated day `day` (0-based)."""
    midnight = datetime(start_date.year, start_date.month, start_date.day, tzinfo=timezone.utc)
    return int(midnight.timestamp()) * 1000 + day * DAY_MS


class Clock:
    """One user's clock during one simulated day."""

    __slots__ = ("now", "limit", "track_ms", "step_ms")

    def __init__(self, config: CalendarConfig, day_start: int):
        self.now = day_start - 1
        self.limit = day_start + DAY_MS - _SQUEEZE_MS
        self.track_ms = config.track_seconds * 1000
        self.step_ms = int(config.step_seconds * 1000)

    def begin(self, at_ms: int) -> int:
        """Start a session at `at_ms`, or just after the previous one ended; returns the start."""
        self.now = max(self.now + 1, min(at_ms, self.limit))
        return self.now

    def advance(self, time: float) -> None:
        """The user spent a step listening to a track for fraction `time` of it."""
        self.now = max(self.now, min(self.now + self.step_ms + int(time * self.track_ms),
                                     self.limit))

    def stamp(self) -> int:
        """The timestamp of the request sent now; the next one is at least 1 ms later."""
        stamp = self.now
        self.now += 1
        return stamp


def session_starts(config: CalendarConfig, day_start: int, sessions: int,
                   rng: np.random.Generator) -> list[int]:
    """Sorted start times (ms) of a user's `sessions` sessions on the day starting `day_start`."""
    offsets = np.sort(rng.random(sessions)) * (config.day_hours * 3_600_000)
    return [day_start + int(offset) for offset in offsets]
