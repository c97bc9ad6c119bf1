"""Seeded synthetic event logs in the event contract, for the tests and the benchmarks (not the
simulator: sim/ plays users against the real service). Same arguments and seed, same logs.

Three models, each for what its readers need to find in the logs:

- **Bulk lines** (`event_lines`, `write_log_file`, `write_replica_logs`): uniform random users,
  tracks and arms, written fast to a given size in the service's layout (`root/<replica>/
  events.jsonl` active plus `events.jsonl.1`, `.2`, ... rotated). For the dataclient and for
  throughput, where only the lines' validity and volume matter.
- **Learnable sessions** (`synthetic_sessions`, `write_event_log`): the simulated user of
  docs/DESIGN.md closely enough for the jobs to have something to learn: hidden track
  embeddings, users with 3 interest tracks, a session starting at one of the 10 tracks nearest
  an interest (time 1.0), then recommendations from a Random recommender (day-0 logs) or,
  `contextual=True`, mostly one of the 100 tracks nearest the previous one (like a Contextual
  recommender over a good table: day-1 logs); listen time
  expit((dot - bias) * sharpness) * 0.8 ** artist_plays, 0 for a repeat, budget 5. Embeddings
  are built like sim/world.py's (re-implemented so the jobs' tests do not depend on the
  simulator): a shared direction + the genre's + the artist's + the track's own, in variance
  shares 0.10 / 0.46 / 0.27 / 0.17, squared norm 9, 40 genres, one artist per 10 tracks.
- **A/B logs with a known effect** (`synthetic_events`, `write_events`), for the analysis: each
  user has 1 + Poisson(`extra_sessions`) sessions; a session is a first request with time 1.0,
  then 1 + Geometric(`session_end`) - 1 more requests, the last one "last". Recommended tracks
  are listened to a fraction U(0, 0.8) * (1 + time_lift[arm]), rounded to two decimals like
  the simulator; latency is Exponential(`latency_mean`) * (1 + latency_lift[arm]). Vectorised
  (a pandas frame), so a benchmark can draw millions of users. Options: `client_latency_mean`
  adds each event's `client_latency`, Exponential(mean) * (1 + client_latency_lift[arm]);
  `exposure_lift` (with `days` > 1) adds to an arm's time lift one value per day since the
  user's first session (a novelty or learning curve; the last value holds for later days).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from scipy.special import expit

from contract.events import make_event


# --- bulk lines -----------------------------------------------------------------------------

EVENTS_PER_BATCH = 20_000


def event_lines(rng: np.random.Generator, start_ms: int, n: int) -> tuple[bytes, int]:
    """n JSON lines with timestamps increasing from start_ms, and the last timestamp."""
    users = rng.integers(0, 10_000, n)
    tracks = rng.integers(0, 50_000, n)
    recs = rng.integers(0, 50_000, n)
    times = np.round(rng.random(n), 2)
    latencies = np.round(rng.exponential(0.002, n), 6)
    last = rng.random(n) < 0.1
    steps = np.cumsum(rng.integers(1, 20, n)) + start_ms
    arms = np.where(rng.random(n) < 0.5, "C", "T1")
    lines = b"".join(
        orjson.dumps(make_event("last" if last[i] else "next", int(steps[i]), int(users[i]),
                                int(tracks[i]), float(times[i]), float(latencies[i]),
                                None if last[i] else int(recs[i]),
                                {"CONTEXTUAL": str(arms[i])})) + b"\n"
        for i in range(n))
    return lines, int(steps[-1])


def write_log_file(path: Path, size_bytes: int, rng: np.random.Generator,
                   start_ms: int = 1_700_000_000_000) -> int:
    """Whole lines until the file holds at least size_bytes; returns its size."""
    written, clock = 0, start_ms
    with open(path, "wb") as f:
        while written < size_bytes:
            n = min(EVENTS_PER_BATCH, max(1, (size_bytes - written) // 150))
            block, clock = event_lines(rng, clock, n)
            f.write(block)
            written += len(block)
    return written


def write_replica_logs(root: Path, replicas: int, files_per_replica: int, bytes_per_file: int,
                       seed: int) -> list[Path]:
    """The layout described above; returns the replica folders."""
    rng = np.random.default_rng(seed)
    folders = []
    for r in range(replicas):
        folder = root / f"replica-{r + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(files_per_replica):
            name = "events.jsonl" if k == 0 else f"events.jsonl.{k}"
            write_log_file(folder / name, bytes_per_file, rng)
        folders.append(folder)
    return folders


# --- learnable sessions ----------------------------------------------------------------------

def nearest(emb: np.ndarray, rows: np.ndarray, n: int, batch: int = 2048) -> np.ndarray:
    """The n tracks with the largest dot product with each of `rows` (itself included)."""
    return np.concatenate([np.argpartition(-(emb[rows[i:i + batch]] @ emb.T), n, axis=1)[:, :n]
                           for i in range(0, len(rows), batch)])


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def synthetic_sessions(n_sessions: int, n_tracks: int = 5_000, n_users: int = 1_000,
                       dim: int = 32, seed: int = 0, max_len: int = 60,
                       contextual: bool = False) -> list[list[dict]]:
    """Events of `n_sessions` sessions, each a list in time order; users never overlap in time."""
    rng = np.random.default_rng(seed)
    n_artists = max(n_tracks // 10, 1)
    artist = rng.integers(0, n_artists, n_tracks)
    genre = rng.integers(0, 40, n_artists)[artist]
    emb = (np.sqrt(0.10) * unit_rows(rng, 1, dim) + np.sqrt(0.46) * unit_rows(rng, 40, dim)[genre]
           + np.sqrt(0.27) * unit_rows(rng, n_artists, dim)[artist]
           + np.sqrt(0.17) * unit_rows(rng, n_tracks, dim))
    emb = (emb * 3.0 / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    interests = rng.integers(0, n_tracks, (n_users, 3))
    bias = rng.uniform(0, 10, n_users)
    sharpness = rng.uniform(0.5, 2, n_users)

    user = rng.integers(0, n_users, n_sessions)
    interest = interests[user, rng.integers(0, 3, n_sessions)]
    # The first track: one of the 10 tracks nearest the interest track (by embedding dot).
    uniq, inverse = np.unique(interest, return_inverse=True)
    first = nearest(emb, uniq, 10)[inverse, rng.integers(0, 10, n_sessions)]
    neighbours = nearest(emb, np.arange(n_tracks), 100) if contextual else None

    played = np.full((n_sessions, max_len), -1, dtype=np.int64)
    times = np.zeros((n_sessions, max_len))
    played[:, 0], times[:, 0] = first, 1.0
    length = np.ones(n_sessions, dtype=np.int64)
    budget = np.full(n_sessions, 5)
    active = np.ones(n_sessions, dtype=bool)
    for step in range(1, max_len):
        active &= budget > 0
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        rec = rng.integers(0, n_tracks, idx.size)
        if contextual:
            chained = rng.random(idx.size) < 0.9
            previous = played[idx[chained], step - 1]
            rec[chained] = neighbours[previous, rng.integers(0, 100, chained.sum())]
        score = np.einsum("ij,ij->i", emb[rec], emb[interest[idx]])
        artist_plays = (artist[played[idx, :step]] == artist[rec][:, None]).sum(axis=1)
        time = np.round(expit((score - bias[user[idx]]) * sharpness[user[idx]]) * 0.8 ** artist_plays, 2)
        time[(played[idx, :step] == rec[:, None]).any(axis=1)] = 0.0
        played[idx, step], times[idx, step] = rec, time
        length[idx] += 1
        budget[idx] -= rng.random(idx.size) < 1 - time
    # Sessions of one user follow each other an hour apart; events a second apart.
    order = np.lexsort((np.arange(n_sessions), user))
    rank_in_user = np.empty(n_sessions, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(user[order])) + 1]
    rank_in_user[order] = np.arange(n_sessions) - np.repeat(starts, np.diff(np.r_[starts, n_sessions]))
    start_ts = 1_700_000_000_000 + rank_in_user * 3_600_000 + rng.integers(0, 1_800_000, n_sessions)
    arm = np.where(rng.random(n_users) < 0.5, "C", "T1")
    sessions = []
    for s in range(n_sessions):
        n, u = int(length[s]), int(user[s])
        events = []
        for i in range(n):
            last = i == n - 1
            events.append(make_event("last" if last else "next", int(start_ts[s] + 1000 * i), u,
                                     int(played[s, i]), float(times[s, i]),
                                     float(rng.uniform(0.001, 0.01)),
                                     None if last else int(played[s, i + 1]),
                                     {"CONTEXTUAL": str(arm[u])}))
        sessions.append(events)
    return sessions


def write_event_log(sessions: list[list[dict]], folder: Path, n_files: int = 4) -> int:
    """Write all events as JSON lines in time order, split into `n_files` files; returns lines."""
    events = sorted((e for s in sessions for e in s), key=lambda e: (e["timestamp"], e["user"]))
    folder.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(events)), n_files)):
        with open(folder / f"events-{i:03d}.jsonl", "wb") as f:
            f.writelines(orjson.dumps(events[j]) + b"\n" for j in chunk)
    return len(events)


# --- A/B logs with a known effect -------------------------------------------------------------

DAY_MS = 86_400_000
BASE_TIMESTAMP_MS = 20_775 * DAY_MS   # 2026-11-18 00:00 UTC, so report dates look like a real run
LISTEN_MAX = 0.8                      # recommended tracks: U(0, LISTEN_MAX) before the lift


def synthetic_events(users: int, seed: int | list[int], experiment: str = "EXP",
                     split: dict[str, float] | None = None,
                     time_lift: dict[str, float] | None = None,
                     latency_lift: dict[str, float] | None = None,
                     extra_sessions: float = 0.25, session_end: float = 0.2,
                     latency_mean: float = 0.004, first_user: int = 0,
                     days: int = 1, client_latency_mean: float | None = None,
                     client_latency_lift: dict[str, float] | None = None,
                     exposure_lift: dict[str, list[float]] | None = None) -> pd.DataFrame:
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
    uniform = rng.uniform(0, LISTEN_MAX, size=len(event_user))
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
        if exposure_lift:  # the user's first session is on their first day of exposure
            since = session_day - session_day[np.searchsorted(session_user, session_user)]
            curves = [np.array(exposure_lift.get(a, [0.0]), dtype=float) for a in names]
            lift = lift + np.array([curves[a][min(d, len(curves[a]) - 1)] for a, d in
                                    zip(arm[event_user], since[event_session])])
    if len(lift) and lift.max() > 1 / LISTEN_MAX - 1:
        raise ValueError(f"a lift above {1 / LISTEN_MAX - 1:.2f} would push time past 1.0")
    time = np.where(position == 0, 1.0, np.round(uniform * (1 + lift), 2))
    recommendation = pd.array(np.where(is_last, -1, rng.integers(0, 50_000, len(event_user))),
                              dtype="Int64")
    recommendation[is_last] = pd.NA
    assignments = [{experiment: a, "OTHER": "C"} for a in names]  # shared dicts: cheap rows
    track = rng.integers(0, 50_000, len(event_user))
    extra = {}
    if client_latency_mean is not None:
        slower = np.array([(client_latency_lift or {}).get(a, 0.0) for a in names])
        extra["client_latency"] = (rng.exponential(client_latency_mean, size=len(event_user))
                                   * (1 + slower[arm[event_user]]))
    return pd.DataFrame({
        "message": np.where(is_last, "last", "next"),
        "timestamp": timestamp,
        "user": first_user + event_user,
        "track": track,
        "time": time,
        "latency": latency,
        "recommendation": recommendation,
        "experiments": [assignments[i] for i in arm[event_user]],
        **extra,
    })


def write_events(events: pd.DataFrame, folder: str | Path, files: int = 4) -> Path:
    """Write the events as JSON-lines part files, like a log folder the dataclient fills."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in enumerate(np.array_split(np.arange(len(events)), files)):
        events.iloc[rows].to_json(folder / f"part-{part:05d}.jsonl", orient="records",
                                  lines=True, double_precision=15)
    return folder
