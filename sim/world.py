"""The simulated world: a public catalog plus the simulator's secret embeddings and users.

    python -m sim.world --config conf/sim.yml --seed 42 --out data/world

writes, deterministically from the seed:

- `tracks.jsonl`  the public catalog, {"track", "artist", "title"} per line: the only file the
                  service and the jobs may read;
- `embeddings.npz` hidden track embeddings with their genre and artist index (secret);
- `users.npz`     users: interest tracks, their nearest tracks, consume bias/sharpness (secret);
- `world.json`    the seed and configuration the world was made from.

Embeddings have nested structure: a track's vector is the sum of a direction shared by all
tracks, its genre's, its artist's and its own random direction, in the variance shares of
`world.spread`, normalised to squared norm `world.scale`. So the cosine of two tracks is about
`shared` + `genre` (same genre) + `artist` (same artist): similar means something.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from sim.config import ConfigError, SimConfig, load_config
from sim.names import artist_names, track_titles

CATALOG_FILE = "tracks.jsonl"
EMBEDDINGS_FILE = "embeddings.npz"
USERS_FILE = "users.npz"
MANIFEST_FILE = "world.json"
WORLD_FILES = (CATALOG_FILE, EMBEDDINGS_FILE, USERS_FILE, MANIFEST_FILE)

# queries per block in the nearest-track search: bounds the score matrix (block x catalog)
_SEARCH_BLOCK = 512


@dataclass(frozen=True)
class World:
    seed: int
    embeddings: np.ndarray           # (tracks, dimension) float32, dot(e, e) == scale
    track_artist: np.ndarray         # (tracks,) int32 artist index
    track_genre: np.ndarray          # (tracks,) int32 genre index
    artist_names: list[str]          # artist index -> name in the catalog
    titles: list[str]                # track id -> title
    interests: np.ndarray            # (users, interests) int32 track ids
    interest_neighbours: np.ndarray  # (users, interests, neighbours) int32, nearest first
    consume_bias: np.ndarray         # (users,) float64
    consume_sharpness: np.ndarray    # (users,) float64
    session_budget: int
    artist_discount_gamma: float

    @property
    def n_tracks(self) -> int:
        return len(self.embeddings)

    @property
    def n_users(self) -> int:
        return len(self.interests)


def _skewed_counts(total: int, bins: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """`bins` counts >= 1 summing to `total`, with lognormal(0, sigma) expected shares."""
    weights = rng.lognormal(0.0, sigma, size=bins)
    return 1 + rng.multinomial(total - bins, weights / weights.sum())


def _unit_rows(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    rows = rng.standard_normal(shape)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _embeddings(config: SimConfig, track_genre: np.ndarray, track_artist: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    world = config.world
    shares = world.spread.model_dump()
    total = sum(shares.values())
    weight = {level: np.sqrt(share / total) for level, share in shares.items()}
    dim = world.dimension
    shared = _unit_rows((1, dim), rng)
    genres = _unit_rows((world.genres, dim), rng)
    artists = _unit_rows((world.artists, dim), rng)
    tracks = _unit_rows((world.tracks, dim), rng)
    vectors = (weight["shared"] * shared + weight["genre"] * genres[track_genre]
               + weight["artist"] * artists[track_artist] + weight["track"] * tracks)
    vectors *= np.sqrt(world.scale) / np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def nearest_tracks(embeddings: np.ndarray, track_genre: np.ndarray, queries: np.ndarray,
                   count: int) -> np.ndarray:
    """For each query track id, the `count` tracks of highest dot product, best first.

    Exact, ties to the lower track id. A query's own track is its own nearest (all norms are
    equal). Queries go genre by genre: the count-th best score among the query's genre is a
    lower bound of its count-th best overall, so one comparison over the full score row
    leaves only a handful of candidates to sort instead of a partition of every row.
    """
    count = min(count, len(embeddings))
    result = np.empty((len(queries), count), dtype=np.int32)
    query_genre = track_genre[queries]
    for genre in np.unique(query_genre):
        in_genre = np.flatnonzero(track_genre == genre)
        positions = np.flatnonzero(query_genre == genre)
        for start in range(0, len(positions), _SEARCH_BLOCK):
            rows = positions[start:start + _SEARCH_BLOCK]
            scores = embeddings[queries[rows]] @ embeddings.T
            if len(in_genre) >= count:
                own = scores[:, in_genre]
                bound = np.partition(own, len(in_genre) - count, axis=1)[:, -count]
            else:  # a genre smaller than `count`: every track is a candidate
                bound = np.full(len(rows), -np.inf, dtype=scores.dtype)
            # flat indices split by divmod: cheaper than a 2-D nonzero on this wide mask
            row, track = np.divmod(np.flatnonzero(scores >= bound[:, None]), scores.shape[1])
            # sort candidates by (row, score descending, track id) and keep `count` per row
            order = np.lexsort((track, -scores[row, track], row))
            row, track = row[order], track[order]
            first = np.searchsorted(row, np.arange(len(rows)))
            picks = first[:, None] + np.arange(count)
            result[rows] = track[picks]
    return result


def _distinct_interests(users: int, interests: int, tracks: int,
                        rng: np.random.Generator) -> np.ndarray:
    """(users, interests) track ids, distinct within each user."""
    if interests > tracks:
        raise ConfigError(f"users.interests ({interests}) exceeds world.tracks ({tracks})")
    chosen = rng.integers(tracks, size=(users, interests))
    while True:
        ordered = np.sort(chosen, axis=1)
        clash = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not clash.any():
            return chosen.astype(np.int32)
        chosen[clash] = rng.integers(tracks, size=(int(clash.sum()), interests))


def generate_world(config: SimConfig, seed: int) -> World:
    world_cfg, users_cfg = config.world, config.users
    # independent streams per part: changing user settings never changes the catalog
    catalog_rng, embedding_rng, users_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3))

    genre_of_artist = np.repeat(
        np.arange(world_cfg.genres),
        _skewed_counts(world_cfg.artists, world_cfg.genres, world_cfg.artists_per_genre_sigma,
                       catalog_rng))
    catalog_rng.shuffle(genre_of_artist)
    track_artist = np.repeat(
        np.arange(world_cfg.artists),
        _skewed_counts(world_cfg.tracks, world_cfg.artists, world_cfg.tracks_per_artist_sigma,
                       catalog_rng))
    # shuffled so that track ids say nothing about artists or genres
    catalog_rng.shuffle(track_artist)
    track_artist = track_artist.astype(np.int32)
    track_genre = genre_of_artist[track_artist].astype(np.int32)
    names = artist_names(world_cfg.artists, catalog_rng)
    titles = track_titles(world_cfg.tracks, catalog_rng)

    embeddings = _embeddings(config, track_genre, track_artist, embedding_rng)

    interests = _distinct_interests(users_cfg.users, users_cfg.interests, world_cfg.tracks,
                                    users_rng)
    bias = users_rng.uniform(*users_cfg.consume_bias, size=users_cfg.users)
    sharpness = users_rng.uniform(*users_cfg.consume_sharpness, size=users_cfg.users)
    unique, inverse = np.unique(interests, return_inverse=True)
    neighbours = nearest_tracks(embeddings, track_genre, unique,
                                users_cfg.interest_neighbours)
    interest_neighbours = neighbours[inverse.reshape(interests.shape)]

    return World(seed=seed, embeddings=embeddings, track_artist=track_artist,
                 track_genre=track_genre, artist_names=names, titles=titles,
                 interests=interests, interest_neighbours=interest_neighbours,
                 consume_bias=bias, consume_sharpness=sharpness,
                 session_budget=users_cfg.session_budget,
                 artist_discount_gamma=users_cfg.artist_discount_gamma)


def _manifest(config: SimConfig, seed: int) -> dict:
    return {"seed": seed, **config.world_fingerprint()}


def save_world(world: World, config: SimConfig, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # the manifest goes last and is removed first: a world without one is incomplete
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    with open(out / CATALOG_FILE, "wb") as catalog:
        for track, (artist, title) in enumerate(zip(world.track_artist, world.titles)):
            catalog.write(orjson.dumps(
                {"track": track, "artist": world.artist_names[artist], "title": title}))
            catalog.write(b"\n")
    np.savez(out / EMBEDDINGS_FILE, embeddings=world.embeddings, artist=world.track_artist,
             genre=world.track_genre)
    np.savez(out / USERS_FILE, interests=world.interests,
             interest_neighbours=world.interest_neighbours, consume_bias=world.consume_bias,
             consume_sharpness=world.consume_sharpness)
    (out / MANIFEST_FILE).write_text(json.dumps(_manifest(config, world.seed), indent=2) + "\n")


def world_is_current(out: Path, config: SimConfig, seed: int) -> bool:
    """True when `out` holds a complete world made from this seed and configuration."""
    try:
        manifest = json.loads((out / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (manifest == json.loads(json.dumps(_manifest(config, seed)))
            and all((out / name).exists() for name in WORLD_FILES))


def load_world(folder: Path) -> World:
    """Read a world written by `save_world` (the seed and user constants from its manifest)."""
    folder = Path(folder)
    missing = [name for name in WORLD_FILES if not (folder / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"world folder {folder} is incomplete (missing {', '.join(missing)}); generate it "
            f"with: python -m sim.world --config conf/sim.yml --seed 42 --out {folder}")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    hidden = np.load(folder / EMBEDDINGS_FILE)
    users = np.load(folder / USERS_FILE)
    artist_of_name: dict[str, int] = {}
    titles: list[str] = []
    track_artist = hidden["artist"]
    with open(folder / CATALOG_FILE, "rb") as catalog:
        for line in catalog:
            row = orjson.loads(line)
            artist_of_name.setdefault(row["artist"], int(track_artist[row["track"]]))
            titles.append(row["title"])
    names = [""] * len(artist_of_name)
    for name, index in artist_of_name.items():
        names[index] = name
    return World(seed=manifest["seed"], embeddings=hidden["embeddings"],
                 track_artist=track_artist, track_genre=hidden["genre"], artist_names=names,
                 titles=titles, interests=users["interests"],
                 interest_neighbours=users["interest_neighbours"],
                 consume_bias=users["consume_bias"],
                 consume_sharpness=users["consume_sharpness"],
                 session_budget=manifest["users"]["session_budget"],
                 artist_discount_gamma=manifest["users"]["artist_discount_gamma"])


def ensure_world(out: Path, config: SimConfig, seed: int, force: bool = False,
                 log=print) -> str:
    """Generate the world into `out` unless an identical one is there; say what was done."""
    out = Path(out)
    if not force and world_is_current(out, config, seed):
        log(f"world in {out} is up to date (seed {seed}); nothing to do")
        return "kept"
    action = "regenerated" if (out / MANIFEST_FILE).exists() else "generated"
    started = time.perf_counter()
    world = generate_world(config, seed)
    save_world(world, config, out)
    log(f"{action} world in {out} (seed {seed}): {world.n_tracks} tracks, "
        f"{len(world.artist_names)} artists, {world.n_users} users "
        f"in {time.perf_counter() - started:.1f} s")
    return action


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim.world",
        description="Generate the simulated world (public catalog + secret embeddings and "
                    "users) deterministically from a seed. Skips the work when the folder "
                    "already holds the same world.")
    parser.add_argument("--config", default="conf/sim.yml", help="simulator config (YAML)")
    parser.add_argument("--seed", type=int, default=42, help="world seed")
    parser.add_argument("--out", default="data/world", help="folder to write the world into")
    parser.add_argument("--force", action="store_true",
                        help="regenerate even when the folder already holds this world")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        ensure_world(Path(args.out), config, args.seed, force=args.force)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
