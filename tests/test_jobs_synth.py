"""A seeded generator of event logs for the jobs' tests and benchmark (not the simulator).

It follows the simulated user of docs/DESIGN.md closely enough for the jobs to have something to
learn: hidden track embeddings, users with 3 interest tracks, a session starting at one of the
10 tracks nearest an interest (time 1.0), then recommendations from a Random recommender
(day-0 logs) or, `contextual=True`, mostly one of the 100 tracks nearest the previous one (like a
Contextual recommender over a good table: day-1 logs); listen time
expit((dot - bias) * sharpness) * 0.8 ** artist_plays, 0 for a repeat, budget 5.
Embeddings are built like sim/world.py's (re-implemented so the jobs' tests do not depend on the
simulator): a shared direction + the genre's + the artist's + the track's own, in variance shares
0.10 / 0.46 / 0.27 / 0.17, squared norm 9, 40 genres, one artist per 10 tracks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from scipy.special import expit

from contract.events import make_event, validation_error

pytestmark = pytest.mark.slow


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


def test_generator_is_deterministic_and_follows_the_contract():
    a, b = synthetic_sessions(50, seed=3), synthetic_sessions(50, seed=3)
    assert a == b
    assert a != synthetic_sessions(50, seed=4)
    events = [e for s in a for e in s]
    assert all(validation_error(e) is None for e in events)
    assert all(s[-1]["message"] == "last" and s[0]["time"] == 1.0 for s in a)
