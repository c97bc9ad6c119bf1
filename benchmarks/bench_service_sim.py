"""The service's two server engines (`server.engine`) under the simulator, as the pipeline uses it.

    .venv/bin/python benchmarks/bench_engines.py [--episodes 20000] [--processes 4] [--rounds 2]
                                                 [--seed 42] [--engines granian,uvicorn]

bench_service.py loads the service with wrk at 64 connections; the pipeline's load is another
shape: a few simulator workers, each waiting for an answer before its next request. Here, in
each round and for each engine in turn (the order alternates between rounds), `python -m
service` serves a Random arm over a simulated world (benchmarks/out/world-seed<seed>, made by
sim.world when missing) and `python -m sim.run --recommender remote` plays `--episodes`
sessions against it with `--processes` workers. Prints the simulator's wall seconds, the
service's CPU seconds over those sessions, and its CPU per request.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench_service import OUT, REPO, cpu_seconds, start_service, stop
from infra.ports import free_port


def make_world(seed: int) -> Path:
    world = OUT / f"world-seed{seed}"
    if not (world / "tracks.jsonl").exists():
        subprocess.run([sys.executable, "-m", "sim.world", "--config", "conf/sim.yml", "--seed",
                        str(seed), "--out", str(world)], cwd=REPO, check=True)
    return world


def write_config(folder: Path, world: Path, engine: str) -> Path:
    config = {"seed": 1, "catalog": str(world / "tracks.jsonl"), "server": {"engine": engine},
              "log": {"dir": str(folder / "logs"), "replica": engine, "max_bytes": 64 * 2**20},
              "experiments": [{"name": "BENCH", "arms": [{"name": "R", "recommender": "random"}]}]}
    path = folder / f"service-{engine}.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def simulate(url: str, world: Path, args, output: Path) -> float:
    """Wall seconds of the simulator playing its sessions against `url`."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sim.run", "--episodes", str(args.episodes),
                    "--recommender", "remote", "--url", url, "--config", "conf/sim.yml",
                    "--seed", str(args.seed), "--world", str(world), "--processes",
                    str(args.processes), "--output", str(output)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def requests_served(logs: Path) -> int:
    return sum(1 for file in logs.glob("events.jsonl*") for _ in file.open("rb"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--engines", default="granian,uvicorn")
    args = parser.parse_args()
    engines = args.engines.split(",")
    world = make_world(args.seed)
    print(f"{args.episodes} sessions, {args.processes} simulator workers, world {world}")
    print("round engine      sim wall s  service CPU s  CPU us/request")
    for round_number in range(1, args.rounds + 1):
        for engine in engines if round_number % 2 else engines[::-1]:
            folder = OUT / f"engines-{engine}"
            folder.mkdir(parents=True, exist_ok=True)
            config, port = write_config(folder, world, engine), free_port()
            service, _ = start_service(config, port, folder / "service.err")
            try:
                cpu_before = cpu_seconds(service.pid)
                wall = simulate(f"http://127.0.0.1:{port}", world, args, folder / "sim.jsonl")
                cpu = cpu_seconds(service.pid) - cpu_before
            finally:
                stop([service])
            logs = folder / "logs" / engine
            served = requests_served(logs)
            for file in logs.glob("events.jsonl*"):
                file.unlink()  # the next round counts its own
            print(f"{round_number:5d} {engine:10s} {wall:11.1f} {cpu:14.1f} {cpu / served * 1e6:15.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
