"""Human-readable artist names and track titles for the generated catalog.

Names carry no information about the hidden embeddings: they only make the catalog and the
console agent pleasant to read. Artist names are unique (the service groups tracks by them).
"""
from __future__ import annotations

import numpy as np

_ADJECTIVES = (
    "Amber", "Blue", "Broken", "Crimson", "Dark", "Electric", "Empty", "Falling", "Golden",
    "Hidden", "Hollow", "Iron", "Last", "Lonely", "Lost", "Midnight", "Neon", "Northern",
    "Pale", "Paper", "Quiet", "Restless", "Silent", "Silver", "Slow", "Southern", "Static",
    "Velvet", "Wild", "Young",
)
_NOUNS = (
    "Anchors", "Birds", "Bones", "Cities", "Clouds", "Crowns", "Dreams", "Engines", "Foxes",
    "Ghosts", "Harbours", "Horses", "Lanterns", "Lights", "Lions", "Machines", "Mirrors",
    "Moons", "Oceans", "Owls", "Rivers", "Saints", "Shadows", "Signals", "Stars", "Tides",
    "Towers", "Waves", "Wolves", "Years",
)
_PREFIXES = ("", "The ", "DJ ", "Los ", "MC ", "Les ", "Club ", "Sister ")
_TITLE_WORDS = (
    "after", "again", "all", "alone", "away", "before", "blood", "burn", "call", "city",
    "cold", "dance", "day", "down", "fire", "forever", "girl", "gold", "heart", "home",
    "light", "love", "money", "night", "rain", "river", "road", "run", "summer", "sun",
    "tonight", "water", "wind", "world", "young",
)


def artist_names(count: int, rng: np.random.Generator) -> list[str]:
    """`count` distinct names drawn without replacement from prefix x adjective x noun."""
    pool = len(_PREFIXES) * len(_ADJECTIVES) * len(_NOUNS)
    if count > pool:
        raise ValueError(f"at most {pool} distinct artist names, {count} asked")
    picks = rng.choice(pool, size=count, replace=False)
    prefix, rest = np.divmod(picks, len(_ADJECTIVES) * len(_NOUNS))
    adjective, noun = np.divmod(rest, len(_NOUNS))
    return [f"{_PREFIXES[p]}{_ADJECTIVES[a]} {_NOUNS[n]}" for p, a, n in zip(prefix, adjective, noun)]


def track_titles(count: int, rng: np.random.Generator) -> list[str]:
    """Two- or three-word titles; repeats across artists are fine, as in real catalogs."""
    words = rng.integers(len(_TITLE_WORDS), size=(count, 3))
    lengths = rng.integers(2, 4, size=count)
    return [
        " ".join(_TITLE_WORDS[w] for w in row[:length]).capitalize()
        for row, length in zip(words, lengths)
    ]
