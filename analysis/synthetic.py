"""Seeded synthetic event logs with a known effect, for the analysis tests and benchmark.

Not the simulator (sim/ plays users against the real service); this only produces logs in the
event-log contract whose per-user metrics are known without Spark. Each user has
1 + Poisson(`extra_sessions`) sessions; a session is a first request with time 1.0 (the user's
own first track), then 1 + Geometric(`session_end`) - 1 more requests, the last one "last".
Recommended tracks are listened to a fraction U(0, 0.8) * (1 + time_lift[arm]), rounded to two
decimals like the simulator; latency is Exponential(`latency_mean`) * (1 + latency_lift[arm]).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DAY_MS = 86_400_000
BASE_TIMESTAMP_MS = 20_775 * DAY_MS   # 2026-11-18 00:00 UTC, so report dates look like a real run
LISTEN_MAX = 0.8                      # recommended tracks: U(0, LISTEN_MAX) before the lift


def synthetic_events(users: int, seed: int | list[int], experiment: str = "EXP",
                     split: dict[str, float] | None = None,
                     time_lift: dict[str, float] | None = None,
                     latency_lift: dict[str, float] | None = None,
                     extra_sessions: float = 0.25, session_end: float = 0.2,
                     latency_mean: float = 0.004, first_user: int = 0,
                     days: int = 1) -> pd.DataFrame:
    """Events (contract columns, in time order per user) of `users` users. With `days` > 1
    each session falls on a random one of that many consecutive days (a user's sessions in
    day order), so users come back or leave."""
    split = split or {"C": 1.0, "T1": 1.0}
    time_lift, latency_lift = time_lift or {}, latency_lift or {}
    if max(time_lift.values(), default=0.0) > 1 / LISTEN_MAX - 1:
        raise ValueError(f"time_lift above {1 / LISTEN_MAX - 1:.2f} would push time past 1.0")
    rng = np.random.default_rng(seed)
    names = list(split)
    shares = np.array([split[a] for a in names], dtype=float)
    arm = rng.choice(len(names), size=users, p=shares / shares.sum())
    sessions = 1 + rng.poisson(extra_sessions, size=users)
    session_user = np.repeat(np.arange(users), sessions)
    length = 1 + rng.geometric(session_end, size=len(session_user))  # requests per session
    event_session = np.repeat(np.arange(len(session_user)), length)
    event_user = session_user[event_session]
    session_start = np.cumsum(length) - length
    position = np.arange(len(event_session)) - session_start[event_session]
    is_last = position == length[event_session] - 1

    lift = np.array([time_lift.get(a, 0.0) for a in names])[arm[event_user]]
    listened = np.round(rng.uniform(0, LISTEN_MAX, size=len(event_user)) * (1 + lift), 2)
    time = np.where(position == 0, 1.0, listened)
    slow = np.array([latency_lift.get(a, 0.0) for a in names])[arm[event_user]]
    latency = rng.exponential(latency_mean, size=len(event_user)) * (1 + slow)

    # Users' histories start at random moments of the day's first 23 hours, a request every
    # 3 s, so one-day logs stay inside one UTC calendar day.
    user_start = BASE_TIMESTAMP_MS + rng.integers(0, DAY_MS - 3_600_000, size=users)
    user_first_event = np.cumsum(np.bincount(event_user, minlength=users)) - np.bincount(
        event_user, minlength=users)
    timestamp = user_start[event_user] + 3_000 * (np.arange(len(event_user))
                                                  - user_first_event[event_user])
    if days > 1:  # drawn last, so one-day logs stay what they were for a seed
        session_day = rng.integers(0, days, size=len(session_user))
        session_day = np.sort(session_day + days * session_user) - days * session_user
        timestamp = timestamp + DAY_MS * session_day[event_session]
    recommendation = pd.array(np.where(is_last, -1, rng.integers(0, 50_000, len(event_user))),
                              dtype="Int64")
    recommendation[is_last] = pd.NA
    assignments = [{experiment: a, "OTHER": "C"} for a in names]  # shared dicts: cheap rows
    return pd.DataFrame({
        "message": np.where(is_last, "last", "next"),
        "timestamp": timestamp,
        "user": first_user + event_user,
        "track": rng.integers(0, 50_000, len(event_user)),
        "time": time,
        "latency": latency,
        "recommendation": recommendation,
        "experiments": [assignments[i] for i in arm[event_user]],
    })


def per_user_metrics(events: pd.DataFrame, arms: list[str],
                     experiment: str = "EXP") -> pd.DataFrame:
    """The design's per-user metrics computed with pandas (the reference for the Spark job),
    with `arm` the index of the user's arm in `arms` (the numpy engine's input), the totals of
    the ratio metrics, and the retention metrics when the events span 2 or more UTC days."""
    day = events["timestamp"] // DAY_MS
    frame = events.assign(arm_name=[e[experiment] for e in events["experiments"]],
                          last=events["message"] == "last", day=day)
    grouped = frame.groupby("user")
    table = pd.DataFrame({
        "arm_name": grouped["arm_name"].first(),
        "sessions": grouped["last"].sum(),
        "events": grouped.size(),
        "time": grouped["time"].sum(),
        "latency": grouped["latency"].sum(),
        "active_days": grouped["day"].nunique(),
        "last_day": grouped["day"].max(),
    })
    metrics = pd.DataFrame({
        "arm_name": table["arm_name"],
        "arm": table["arm_name"].map({name: i for i, name in enumerate(arms)}),
        "sessions": table["sessions"].astype(float),
        "mean_session_time": table["time"] / table["sessions"],
        "mean_session_length": table["events"] / table["sessions"],
        "mean_request_time": table["latency"] / table["events"],
        "time_total": table["time"],
        "events": table["events"].astype(float),
    })
    period = day.max() - day.min() + 1
    if period >= 2:
        metrics["active_days_share"] = table["active_days"] / period
        metrics["churned"] = (table["last_day"] < day.max()).astype(float)
    return metrics.reset_index()


def write_events(events: pd.DataFrame, folder: str | Path, files: int = 4) -> Path:
    """Write the events as JSON-lines part files, like a log folder the dataclient fills."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in enumerate(np.array_split(np.arange(len(events)), files)):
        events.iloc[rows].to_json(folder / f"part-{part:05d}.jsonl", orient="records",
                                  lines=True, double_precision=15)
    return folder
