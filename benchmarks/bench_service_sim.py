"""The service under the simulator, as the pipeline serves a day: replicas on Unix sockets, a few
simulator workers each pipelining a round of requests and waiting for the answers.

    .venv/bin/python benchmarks/bench_service_sim.py [--episodes 20000] [--processes 4]
                                                     [--replicas 2] [--rounds 2] [--seed 42]
                                                     [--also TREE]

bench_service.py loads the service with wrk at 64 connections; this is the pipeline's load. In
each round, for this checkout and each `--also TREE` (another source tree, e.g. a `git worktree`
of an older commit, run by its own .venv's Python when it has one) in turn, the order
alternating between rounds: `--replicas` `python -m service` processes serve a Random arm over a
simulated world (benchmarks/out/world-seed<seed>, made by sim.world when missing), each on a Unix
socket, and `python -m sim.run --recommender remote` (this checkout's) plays `--episodes`
sessions against them with `--processes` workers, as conf/pipeline.yml's days do. Prints the
simulator's wall seconds, the services' CPU seconds and their CPU time per request, and each
tree's median wall time over this checkout's. With --write-docs, the rounds replace this
benchmark's section of docs/SPEED.md (`service-sim`, benchmarks/speed_doc.py).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

import speed_doc
from bench_service import OUT, REPO, cpu_seconds, python_of, stop
from infra.unix_socket import new_socket_path
from service.config import shipped_with


def make_world(seed: int) -> Path:
    world = OUT / f"world-seed{seed}"
    if not (world / "tracks.jsonl").exists():
        subprocess.run([sys.executable, "-m", "sim.world", "--config", "conf/sim.yml", "--seed",
                        str(seed), "--out", str(world)], cwd=REPO, check=True)
    return world


def write_config(folder: Path, world: Path) -> Path:
    config = shipped_with({"seed": 1, "catalog": str(world / "tracks.jsonl"),
                           "log": {"dir": str(folder / "logs"), "max_bytes": 64 * 2**20},
                           "experiments": [{"name": "BENCH", "arms": [{"name": "R", "recommender": "random"}]}]})
    path = folder / "service.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def start_replicas(tree: Path, config: Path, count: int, folder: Path) -> tuple[list, list[Path]]:
    """`count` services from `tree` on Unix sockets of their own, once each answers GET /."""
    processes, sockets = [], [new_socket_path(f"bench-{k}.sock") for k in range(count)]
    for k, path in enumerate(sockets):
        processes.append(subprocess.Popen(
            [python_of(tree), "-m", "service", "--config", str(config), "--uds", str(path),
             "--replica", f"replica-{k}"], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
            stderr=open(folder / f"replica-{k}.err", "w")))
    for process, path in zip(processes, sockets):
        deadline = time.monotonic() + 60
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://botify") as http:
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    stop(processes)
                    sys.exit(f"a service of {tree} did not start: see {folder}")
                try:
                    http.get("/", timeout=0.5)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
    return processes, sockets


def simulate(urls: list[str], world: Path, args, output: Path) -> float:
    """Wall seconds of the simulator playing its sessions against the replicas."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sim.run", "--episodes", str(args.episodes),
                    "--recommender", "remote", "--url", *urls, "--config", "conf/sim.yml",
                    "--seed", str(args.seed), "--world", str(world), "--processes",
                    str(args.processes), "--output", str(output)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def requests_served(logs: Path) -> int:
    return sum(1 for file in logs.glob("*/events.jsonl*") for _ in file.open("rb"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="TREE",
                        help="also serve from another source tree in every round; repeatable")
    parser.add_argument("--write-docs", action="store_true",
                        help="replace this benchmark's section of docs/SPEED.md with the rounds")
    args = parser.parse_args()
    trees = {"this": REPO, **{tree.name: tree.resolve() for tree in args.also}}
    world = make_world(args.seed)
    print(f"{args.episodes} sessions, {args.processes} simulator workers, {args.replicas} replicas "
          f"on Unix sockets, world {world}")
    print("round tree                  sim wall s  service CPU s  CPU us/request")
    walls, rows = {name: [] for name in trees}, []
    for round_number in range(1, args.rounds + 1):
        for name in trees if round_number % 2 else list(trees)[::-1]:
            folder = OUT / f"service-sim-{name}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            processes, sockets = start_replicas(trees[name], write_config(folder, world), args.replicas, folder)
            try:
                cpu_before = sum(cpu_seconds(p.pid) for p in processes)
                wall = simulate([f"unix://{path}" for path in sockets], world, args, folder / "sim.jsonl")
                cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu_before
            finally:
                stop(processes)
                for path in sockets:
                    shutil.rmtree(path.parent, ignore_errors=True)
            walls[name].append(wall)
            served = requests_served(folder / "logs")
            print(f"{round_number:5d} {name:20s} {wall:11.1f} {cpu:14.1f} {cpu / served * 1e6:15.1f}",
                  flush=True)
            rows.append([round_number, f"{name} ({speed_doc.commit(trees[name])})", f"{wall:.1f}",
                         f"{cpu:.1f}", f"{cpu / served * 1e6:.1f}"])
    summary = "; ".join(f"{name}: median sim wall {statistics.median(walls[name]):.1f} s, "
                        f"{statistics.median(walls[name]) / statistics.median(walls['this']):.2f} x this checkout's"
                        for name in list(trees)[1:])
    if summary:
        print(summary)
    if args.write_docs:
        speed_doc.write(
            "service-sim", title="The service under the simulator",
            measures=f"`python -m sim.run --recommender remote` playing {args.episodes} sessions with "
                     f"{args.processes} workers against {args.replicas} `python -m service` replicas on "
                     f"Unix sockets (a Random arm), as the pipeline's days run; each tree in turn, the "
                     f"order alternating between rounds: the simulator's wall seconds and the services' "
                     f"CPU time.",
            command=" ".join([".venv/bin/python benchmarks/bench_service_sim.py"]
                             + [a for a in sys.argv[1:] if a != "--write-docs"]),
            header=["round", "tree", "sim wall s", "service CPU s", "CPU us per request"], rows=rows,
            summary=summary)


if __name__ == "__main__":
    main()
