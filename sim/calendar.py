"""Simulated days: when each session starts and the timestamp of each request.

A run of `--days N` plays calendar days (UTC) from `calendar.start_date`. A user's sessions of
a day start at uniform random times in the day's first `calendar.day_hours` hours (sorted),
and each never starts before the previous one ended. In a session, each request is stamped
when the user has finished the track it reports: the session's start, plus `step_seconds` per
request so far, plus `track_seconds` times the time listened so far (the first track, listened
fully, included). The clock is computed from the session's counters when a request is sent,
so an in-process run pays nothing per step for it.

A user's timestamps strictly increase and never leave their day: past `day end - 10 minutes`
the clock moves 1 ms per request only (a user would need 600,000 requests in a day to pass the
day's end). So a log cut by UTC calendar day of the event timestamps cuts exactly at the
simulated days, and a user's sessions on different days can never share a millisecond.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Protocol

from sim.config import CalendarConfig

DAY_MS = 86_400_000
# the last part of a day where the clock only moves 1 ms per request (see the module docstring)
_SQUEEZE_MS = 600_000


class SessionCounters(Protocol):
    """What the clock reads of a session (sim/user.py's Session has them): the clock depends on
    these counters only, and the session on the clock."""
    tracks: int             # recommended tracks listened
    failed_steps: int       # requests that got no usable answer
    session_time: float     # time listened to the recommended tracks


def day_start_ms(start_date: date, day: int) -> int:
    """Milliseconds since the epoch at 00:00 UTC of simulated day `day` (0-based)."""
    midnight = datetime(start_date.year, start_date.month, start_date.day, tzinfo=timezone.utc)
    return int(midnight.timestamp()) * 1000 + day * DAY_MS


class Clock:
    """One user's clock during one simulated day."""

    __slots__ = ("day_start", "start", "last", "limit", "track_ms", "step_ms")

    def __init__(self, config: CalendarConfig, day_start: int):
        self.day_start = day_start
        self.start = self.last = day_start - 1   # the last timestamp handed out
        self.limit = day_start + DAY_MS - _SQUEEZE_MS
        self.track_ms = config.track_seconds * 1000
        self.step_ms = int(config.step_seconds * 1000)

    def begin(self, offset_hours: float) -> int:
        """Start a session `offset_hours` into the day, or just after the previous one ended;
        returns the session's start (ms)."""
        at = self.day_start + int(offset_hours * 3_600_000)
        self.start = max(self.last + 1, min(at, self.limit))
        self.last = self.start
        return self.start

    def _now(self, session: SessionCounters) -> int:
        return min(self.start + self.step_ms * (1 + session.tracks + session.failed_steps)
                   + int(self.track_ms * (1.0 + session.session_time)), self.limit)

    def stamp(self, session: SessionCounters) -> int:
        """The timestamp of the request `session` sends now (strictly after the last one)."""
        self.last = max(self._now(session), self.last + 1)
        return self.last

    def close(self, session: SessionCounters) -> None:
        """`session` is over: the user's next session starts after its end."""
        self.last = max(self._now(session), self.last)
