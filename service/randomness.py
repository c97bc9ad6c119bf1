"""Request-derived randomness.

A recommender's random choice is a hash of (config seed, the recommender's salt, user,
previous track, position in the session) instead of a draw from a shared generator, so the
same simulated traffic gets the same recommendations however concurrent requests interleave,
on any number of replicas.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

import mmh3

T = TypeVar("T")


def pick(items: Sequence[T], seed: int, salt: str, user: int, track: int, position: int) -> T:
    """One element of a non-empty sequence: the 64-bit MurmurHash3 (unsigned, first 64 bits) of
    "<salt>:<user>:<track>:<position>" seeded with `seed`, modulo the length."""
    key = f"{salt}:{user}:{track}:{position}"
    return items[mmh3.hash64(key, seed & 0xFFFFFFFF, signed=False)[0] % len(items)]


def pick_weighted(items: Sequence[T], weights: Sequence[float], seed: int, salt: str, user: int,
                  track: int, position: int) -> T:
    """One element drawn with probability proportional to its (non-negative, not all zero)
    weight, from the same request-derived hash as `pick`."""
    key = f"{salt}:{user}:{track}:{position}"
    point = mmh3.hash64(key, seed & 0xFFFFFFFF, signed=False)[0] / 2**64 * sum(weights)
    for item, weight in zip(items, weights):
        point -= weight
        if point < 0:
            return item
    return next(item for item, weight in zip(reversed(items), reversed(weights)) if weight > 0)
