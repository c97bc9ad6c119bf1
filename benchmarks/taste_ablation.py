"""Ablation of the Taste recommender, in-process against the simulator (no HTTP, no service).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/taste_ablation.py --world data/world-seed7 \\
        --tables runs/<id>/tables/day1 [--episodes 2000] [--seed 9]

Plays the same episodes (same users, same user draws) against each variant of Taste built from
`--tables`/tracks_taste.json, and against ContextualUpdated over the same folder's day-1 NN, SVD
and top-pop tables, through the registry's own build. Prints the simulator's mean session time
(session time without the first track; add 1 for the logs' view) with its standard error, and
each variant's mean paired with the full recommender's over the same episodes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from contract.catalog import load_catalog
from service.recommenders import Listen
from service.recommenders.registry import lookup
from service.recommenders.taste import Taste
from service.stores.memory import MemoryStore
from service.tables import read_keyed, read_list
from sim.config import load_config
from sim.run import episode_users, user_streams
from sim.user import UserModel
from sim.world import load_world

# name -> Taste params (None: ContextualUpdated); each switches one part off
VARIANTS = {
    "taste (defaults)": {},
    "no rotation: replays valued without the discount (repeat_factor 1)": {"repeat_factor": 1.0},
    "session-blind walk: never replay while the row lasts (repeat_factor 0)": {"repeat_factor": 0.0},
    "with session anchors: the last 6 tracks' rows join (anchors 6)": {"anchors": 6},
    "no co-listening model: empty table": {"empty_table": True},
    "ContextualUpdated (day-1 tables)": None,
}


def build(name: str, params: dict, tables: Path, catalog, store):
    def load(kind: str, path: Path):
        if kind == "toppop":
            return store.track_list(read_list(path, catalog.id_array))
        return store.keyed_table(read_keyed(path, kind, catalog.id_array))
    spec = lookup(name)
    slots = ({"taste": tables / "tracks_taste.json"} if name == "taste" else
             {"nn": tables / "tracks_nn.json", "users": tables / "recommendations_svd.json",
              "toppop": tables / "top_tracks.json"})
    return spec.build(spec.params.model_validate(params), slots, catalog, 42, load)


class _NoRows:
    """A table with no row: Taste without its co-listening model."""
    def get(self, key):
        return None


def play(recommender, world, episodes: int, seed: int, max_tracks: int) -> np.ndarray:
    model = UserModel(world, max_tracks)
    streams = {}
    times = []
    for user in map(int, episode_users(seed, episodes, world.n_users)):
        streams.setdefault(user, user_streams(seed, user))
        session = model.start_session(user, *streams[user])
        history = [(session.first_track, 1.0)]
        while not session.over:
            track = recommender.recommend(Listen(user, history[-1][0], history[-1][1], history))
            history.append((track, session.listen(track)))
        times.append(session.session_time)
    return np.array(times)


def print_variant(label: str, times: np.ndarray, full: np.ndarray, width: int) -> None:
    """A variant's mean session time with its standard error, and its mean paired with the
    full recommender's over the same episodes."""
    diff = times - full
    print(f"{label:<{width}} {times.mean():7.2f} ± {times.std(ddof=1) / np.sqrt(len(times)):.2f}"
          f"   vs defaults {diff.mean():+7.2f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--tables", type=Path, required=True,
                        help="folder with tracks_taste.json and the day-1 tracks_nn.json, "
                             "recommendations_svd.json, top_tracks.json")
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--config", type=Path, default=Path("conf/sim.yml"))
    args = parser.parse_args(argv)
    world = load_world(args.world)
    catalog = load_catalog(args.world / "tracks.jsonl")
    store = MemoryStore(session_idle_s=1800)
    max_tracks = load_config(args.config).run.max_session_tracks
    full = None
    print(f"world {args.world} (seed {world.seed}), {args.episodes} episodes, run seed {args.seed}; "
          f"simulator view (add 1 for the logs')")
    for label, params in VARIANTS.items():
        if params is None:
            recommender = build("contextual_updated", {}, args.tables, catalog, store)
        else:
            params = dict(params)
            if params.pop("empty_table", False):
                recommender = Taste(_NoRows(), catalog, Taste.Params(**params), 42)
            else:
                recommender = build("taste", params, args.tables, catalog, store)
        times = play(recommender, world, args.episodes, args.seed, max_tracks)
        full = times if full is None else full
        print_variant(label, times, full, 74)
    return 0


if __name__ == "__main__":
    sys.exit(main())
