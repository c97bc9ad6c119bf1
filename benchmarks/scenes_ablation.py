"""Ablation of the Scenes recommender, in-process against the simulator (no HTTP, no service).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/scenes_ablation.py --world data/world-seed7 \\
        --tables runs/<id>/tables/day1 [--episodes 2000] [--seed 9]

Plays the same episodes (same users, same user draws) against each variant of Scenes over
`--tables`/tracks_scenes.json, against Taste over tracks_taste.json and against
ContextualUpdated over the same folder's NN, SVD and top-pop tables, each built through the
registry. Prints the simulator's mean session time (without the first track; add 1 for the
logs' view) with its standard error, each variant paired with the full rule on the same
episodes, and the share of each table's listed artists in the row artist's hidden genre (a
diagnostic the recommenders never see).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.taste_ablation import play, print_variant
from contract.catalog import load_catalog
from service.recommenders.registry import lookup
from service.stores.memory import MemoryStore
from service.tables import read_keyed, read_list
from sim.config import load_config
from sim.world import load_world

TABLES = {"scenes": {"scenes": "tracks_scenes.json"},
          "taste": {"taste": "tracks_taste.json"},
          "contextual_updated": {"nn": "tracks_nn.json", "users": "recommendations_svd.json",
                                 "toppop": "top_tracks.json"}}

# label -> (recommender, params); the first is the reference the others are paired with
VARIANTS = {
    "scenes (defaults)": ("scenes", {}),
    "fresh artists valued 1 until one is heard: no first replay (fresh_prior 1)": ("scenes", {"fresh_prior": 1.0}),
    "no session anchors: the first artist's row only (anchors 0)": ("scenes", {"anchors": 0}),
    "no rotation: replays valued without the discount (repeat_factor 1)": ("scenes", {"repeat_factor": 1.0}),
    "never replay while a fresh artist is left (repeat_factor 0)": ("scenes", {"repeat_factor": 0.0}),
    "no spectral step: Scenes' rule over Taste's table (its raw links)": ("scenes", {"table": "tracks_taste.json"}),
    "Taste's rule over the scenes table": ("taste", {"table": "tracks_scenes.json"}),
    "Taste (its own table)": ("taste", {}),
    "ContextualUpdated": ("contextual_updated", {}),
}


def build(name: str, params: dict, tables: Path, catalog, store):
    def load(kind: str, path: Path):
        if kind == "toppop":
            return store.track_list(read_list(path, catalog.id_array))
        return store.keyed_table(read_keyed(path, kind, catalog.id_array))
    params = dict(params)
    files = dict(TABLES[name])
    if "table" in params:
        files = {slot: params.pop("table") for slot in files}
    spec = lookup(name)
    slots = {slot: tables / file for slot, file in files.items()}
    return spec.build(spec.params.model_validate(params), slots, catalog, 42, load)


def genre_purity(path: Path, catalog, world, k: int) -> float:
    """Share of the first k listed tracks whose artist's hidden genre is the row artist's."""
    table = read_keyed(path, "tracks", catalog.id_array)
    same = total = 0
    for key, start, end in zip(table.keys, table.offsets[:-1], table.offsets[1:]):
        recs = table.flat[start:min(end, start + k)]
        same += int((world.track_genre[recs] == world.track_genre[int(key)]).sum())
        total += len(recs)
    return same / max(total, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--tables", type=Path, required=True,
                        help="folder with tracks_scenes.json, tracks_taste.json and the day-1 "
                             "tracks_nn.json, recommendations_svd.json, top_tracks.json")
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--only", nargs="*", default=None, help="labels' prefixes to play")
    parser.add_argument("--config", type=Path, default=Path("conf/sim.yml"))
    args = parser.parse_args(argv)
    world = load_world(args.world)
    catalog = load_catalog(args.world / "tracks.jsonl")
    store = MemoryStore(session_idle_s=1800)
    max_tracks = load_config(args.config).run.max_session_tracks
    for file in ("tracks_scenes.json", "tracks_taste.json"):
        if (args.tables / file).exists():
            print(f"{file}: genre purity of the first 20 / 100 listed: "
                  f"{genre_purity(args.tables / file, catalog, world, 20):.2f} / "
                  f"{genre_purity(args.tables / file, catalog, world, 100):.2f}")
    print(f"world {args.world} (seed {world.seed}), {args.episodes} episodes, run seed {args.seed}; "
          f"simulator view (add 1 for the logs')")
    full = None
    for label, (name, params) in VARIANTS.items():
        if args.only is not None and full is not None and not any(label.startswith(o) for o in args.only):
            continue
        times = play(build(name, params, args.tables, catalog, store), world, args.episodes,
                     args.seed, max_tracks)
        full = times if full is None else full
        print_variant(label, times, full, 68)
    return 0


if __name__ == "__main__":
    sys.exit(main())
