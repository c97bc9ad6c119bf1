"""/next throughput of the service serving Taste vs ContextualUpdated, side by side.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_taste_service.py --world data/world-seed7 \\
        --tables runs/<id>/tables/day1 [--duration 10] [--rounds 2]

Starts `python -m service` (memory store) with one arm, ContextualUpdated over the day-1 NN, SVD
and top-pop tables or Taste over tracks_taste.json of the same folder, and loads it with wrk
(64 connections, benchmarks/next.lua: users and tracks varied per request, so sessions grow as
the run goes on), alternating the two for `--rounds` rounds; prints req/s, p50, p99 of each run
and the ratio of the mean throughputs. Needs wrk (`apt-get install -y wrk`).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench_service import start_service, stop, wrk
from infra.ports import free_port
from service.config import shipped_with

ARMS = {
    "contextual_updated": lambda t: {"nn": str(t / "tracks_nn.json"), "users": str(t / "recommendations_svd.json"),
                                     "toppop": str(t / "top_tracks.json")},
    "taste": lambda t: {"taste": str(t / "tracks_taste.json")},
}


def measure(name: str, world: Path, tables: Path, tmp: Path, duration: float, tracks: int) -> dict:
    config = tmp / f"{name}.yml"
    config.write_text(json.dumps(shipped_with({
        "seed": 1, "catalog": str(world / "tracks.jsonl"),
        "store": {"backend": "memory"}, "log": {"dir": str(tmp / "logs" / name), "replica": "r0"},
        "experiments": [{"name": "BENCH", "arms": [{"name": "A", "recommender": name,
                                                     "tables": ARMS[name](tables)}]}]})))
    port = free_port()
    proc, _ = start_service(config, port, tmp / f"{name}.log")
    try:
        wrk(port, 64, 2, tracks)  # warm-up, not reported
        return wrk(port, 64, duration, tracks)
    finally:
        stop([proc])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True, help="folder with tracks.jsonl")
    parser.add_argument("--tables", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    tracks = sum(1 for _ in open(args.world / "tracks.jsonl", "rb"))
    results: dict[str, list[dict]] = {name: [] for name in ARMS}
    with tempfile.TemporaryDirectory(prefix="bench-taste-") as tmp:
        for round_ in range(args.rounds):
            for name in ARMS:
                r = measure(name, args.world.resolve(), args.tables.resolve(), Path(tmp), args.duration, tracks)
                results[name].append(r)
                print(f"round {round_ + 1} {name:<20} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
                      f"p99 {r['p99_ms']:.2f} ms  non-2xx {r['non_2xx']}", flush=True)
    mean = {name: sum(r["rps"] for r in rs) / len(rs) for name, rs in results.items()}
    print(f"throughput taste / contextual_updated: {mean['taste'] / mean['contextual_updated']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
