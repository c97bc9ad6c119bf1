"""What the Taste and Scenes tests share: a catalog written from track -> artist, the small
artist world their recommender tests ask, and one request."""
from __future__ import annotations

from pathlib import Path

import orjson

from contract.catalog import Catalog, load_catalog
from service.recommenders import Listen
from service.stores.memory import MemoryKeyedTable
from service.tables import read_keyed

# Artists A (tracks 0-3), B (4-6), C (7-9), D (10-11), E (12).
ARTISTS = {**{t: "A" for t in range(4)}, **{t: "B" for t in range(4, 7)},
           **{t: "C" for t in range(7, 10)}, 10: "D", 11: "D", 12: "E"}


def write_catalog(path: Path, artist_of: dict[int, str]) -> Catalog:
    path.write_bytes(b"".join(orjson.dumps({"track": t, "artist": a, "title": f"t{t}"}) + b"\n"
                              for t, a in sorted(artist_of.items())))
    return load_catalog(path)


def artist_world(folder: Path, rows: dict[int, list[int]]) -> tuple[Catalog, MemoryKeyedTable]:
    """The ARTISTS catalog and an artist-row table (row key track -> one track per neighbour)."""
    catalog = write_catalog(folder / "tracks.jsonl", ARTISTS)
    table = folder / "rows.json"
    table.write_bytes(b"".join(orjson.dumps({"track": key, "recommendations": recs}) + b"\n"
                               for key, recs in rows.items()))
    return catalog, MemoryKeyedTable(read_keyed(table, "tracks", catalog.id_array))


def ask(recommender, history: list[tuple[int, float]]) -> int:
    """The recommender's answer after the session `history` (user 1)."""
    track, time = history[-1]
    return recommender.recommend(Listen(1, track, time, history))
