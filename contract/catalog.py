"""The public track catalog (the simulator's tracks.jsonl), read by the service (validation of
track ids, the records served by GET /track/{track}, the artist index StickyArtist needs) and by
the jobs that learn from artists.

Every replica keeps the catalog in its own memory whatever the store: it is small (about
50,000 records), immutable during a run, and needed to validate every request.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from contract.tables import TableError, json_lines


@dataclass(frozen=True)
class Catalog:
    records: dict[int, bytes]              # track -> its JSON record, ready to serve
    artist_of: dict[int, str]
    tracks_by_artist: dict[str, tuple[int, ...]]
    track_ids: tuple[int, ...]             # sorted; Random draws from it
    id_array: np.ndarray                   # the same, for validating tables


def load_catalog(path: Path) -> Catalog:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TableError(f"{path}: cannot read the catalog ({e.strerror}); generate it with "
                         f"`python -m sim.world --config conf/sim.yml --seed 42 --out data/world` "
                         f"or fix `catalog` in the service config") from None
    records: dict[int, bytes] = {}
    artist_of: dict[int, str] = {}
    by_artist: dict[str, list[int]] = defaultdict(list)
    for number, line, record in json_lines(path, data):
        track = record.get("track") if isinstance(record, dict) else None
        artist = record.get("artist") if isinstance(record, dict) else None
        if type(track) is not int or track < 0 or not isinstance(artist, str):
            raise TableError(f"{path}:{number}: a catalog line needs a non-negative integer "
                             f"'track' and a string 'artist', got {line[:80]!r}")
        if track in records:
            raise TableError(f"{path}:{number}: track {track} appears twice in the catalog")
        records[track] = orjson.dumps(record)
        artist_of[track] = artist
        by_artist[artist].append(track)
    if not records:
        raise TableError(f"{path}: the catalog is empty")
    ids = tuple(sorted(records))
    return Catalog(records, artist_of, {a: tuple(t) for a, t in by_artist.items()}, ids,
                   np.array(ids, dtype=np.int64))
