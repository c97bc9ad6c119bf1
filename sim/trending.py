"""Trending tracks: each day a few tracks per genre become more appealing for a while.

On simulated day d, `trending.per_genre` tracks of every genre (drawn from the run seed and d)
start trending: `trending.boost` is added to their score `dot(e_track, interest)` before the
listen-time formula, for every user. The boost then decays by the factor `trending.decay` a
day, so a track that started on day s has `boost * decay ** (d - s)` on day d (boosts of a
track that trends twice add up). The service and the jobs never see this: only the listen
times in the logs change.
"""
from __future__ import annotations

import numpy as np

from sim.config import TrendingConfig
from sim.world import World


def trending_boosts(world: World, config: TrendingConfig, seed: int, days: int) -> list[np.ndarray]:
    """Per simulated day, the score boost of every track (float64, one value per track id)."""
    by_genre = [np.flatnonzero(world.track_genre == genre)
                for genre in range(int(world.track_genre.max()) + 1)]
    boosts, current = [], np.zeros(world.n_tracks)
    for day in range(days):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4, day)))
        current = current * config.decay
        for tracks in by_genre:
            chosen = rng.choice(tracks, size=min(config.per_genre, len(tracks)), replace=False)
            current[chosen] += config.boost
        boosts.append(current.copy())
    return boosts
