"""Speed of the botify service against a bare ASGI app, start-up and latency, with both stores.

    .venv/bin/python benchmarks/bench_service.py [--tracks 50000] [--width 100] [--duration 10]
                                                 [--rounds 3] [--stores memory,redis]
                                                 [--redis-url URL] [--replicas 2] [--also TREE]

Builds a synthetic world (catalog + track-keyed contextual table, tracks x width) under
benchmarks/out/, starts the baseline (benchmarks/bare_app.py: uvicorn with uvloop and
httptools, an app that only parses the JSON body and answers a fixed JSON object) and, for each store,
`python -m service` with a Contextual arm (under the same server), all at once, then measures:
- throughput: `--rounds` rounds; in each, wrk loads every server in turn (the order alternates
  between rounds), 64 connections, POST /next with user and track varied per request
  (benchmarks/next.lua): req/s, p50, p99, and each store's req/s over the baseline's of the
  same round, and each server's CPU time per request (which a busy machine changes less than
  req/s); `--also TREE` adds the memory-store service of another source tree to every round
  (before/after comparisons: `git worktree add /tmp/base <commit>`), run by TREE/.venv's
  Python when it has one (its own dependencies), else by this one;
- start-up: process spawn until GET / answers, and the table-load time the service logs;
- keep-alive: wrk, 1 connection: p50, p99;
- logged latency: the mean of `latency` over the events of each phase;
- with --replicas N (default 2; 0 skips it) and nginx installed: N Redis-store replicas behind
  nginx running conf/nginx/nginx.conf (the compose file's proxy), 64 connections.
Needs wrk (`apt-get install -y wrk`) and, for the replicas, nginx (`apt-get install -y
nginx-light`). Without --redis-url a private redis-server is started.
The client runs on the same machine as the servers: on 2 cores they compete for CPU.
With --write-docs, the 64-connection rounds replace this benchmark's section of docs/SPEED.md
(`service`, benchmarks/speed_doc.py).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

import speed_doc
from infra.ports import free_port
from service.config import shipped_with

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
LUA = REPO / "benchmarks" / "next.lua"
BARE_APP = REPO / "benchmarks" / "bare_app.py"
BARE = "bare"  # the baseline's name in the results
NGINX_CONF = REPO / "conf" / "nginx" / "nginx.conf"
WRK_THREADS = int(os.environ.get("WRK_THREADS", "1"))  # 1 leaves the second core to the service


def make_world(folder: Path, tracks: int, width: int, seed: int = 7) -> None:
    """Catalog (tracks, 1 artist per 10 tracks) and a tracks x width contextual table."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "done").exists():
        return
    rng = np.random.default_rng(seed)
    with open(folder / "tracks.jsonl", "wb") as f:
        f.writelines(orjson.dumps({"track": t, "artist": f"artist{t // 10}", "title": f"title{t}"}) + b"\n"
                     for t in range(tracks))
    table = rng.integers(0, tracks, size=(tracks, width))
    with open(folder / "contextual.jsonl", "wb") as f:
        f.writelines(orjson.dumps({"track": t, "recommendations": row.tolist()}) + b"\n"
                     for t, row in enumerate(table))
    (folder / "done").touch()


def write_config(path: Path, world: Path, logs: Path, store: str, redis_url: str | None,
                 phase: str) -> None:
    config = shipped_with({
        "seed": 1, "catalog": str(world / "tracks.jsonl"),
        # A Redis key prefix per phase: every phase starts with empty sessions and loads its tables.
        "store": {"backend": store, "redis_url": redis_url, "redis_prefix": f"bench{os.getpid()}-{phase}"},
        "log": {"dir": str(logs), "replica": store, "max_bytes": 64 * 2**20},
        "experiments": [{"name": "BENCH", "arms": [
            {"name": "C", "recommender": "contextual", "tables": {"tracks": str(world / "contextual.jsonl")}}]}],
    })
    path.write_text(json.dumps(config))  # JSON is YAML


def python_of(tree: Path) -> str:
    """The Python that runs the source tree `tree`: its own .venv's, else this one."""
    own = tree / ".venv" / "bin" / "python"
    return str(own) if tree != REPO and own.exists() else sys.executable


def start_service(config: Path, port: int, stderr_path: Path, replica: str | None = None,
                  tree: Path = REPO) -> tuple[subprocess.Popen, float]:
    """`python -m service` from the source tree `tree` (default: this checkout)."""
    return start_process([python_of(tree), "-m", "service", "--config", str(config), "--port", str(port),
                          *(["--replica", replica] if replica else [])], port, stderr_path, tree)


def start_process(command: list[str], port: int, stderr_path: Path, tree: Path = REPO
                  ) -> tuple[subprocess.Popen, float]:
    """Start an HTTP server importing from `tree`; return it and the seconds until GET / answered."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
                            stderr=open(stderr_path, "w"))
    wait_until_up(port, proc, stderr_path)
    return proc, time.perf_counter() - started


def wait_until_up(port: int, proc: subprocess.Popen, stderr_path: Path) -> None:
    while True:
        if proc.poll() is not None:
            sys.exit(f"{proc.args[0]} exited with {proc.returncode}: {stderr_path.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.02)


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(30)


def nginx_config(folder: Path, port: int, replica_ports: list[int]) -> Path:
    """conf/nginx/nginx.conf with the compose upstream replaced by local replicas, and its
    state kept in `folder` (nginx runs unprivileged there)."""
    text = NGINX_CONF.read_text()
    upstream = "server recommender:5001;"
    assert upstream in text and "listen 5001;" in text, f"{NGINX_CONF} changed: update the benchmark"
    text = text.replace(upstream, " ".join(f"server 127.0.0.1:{p};" for p in replica_ports))
    text = text.replace("listen 5001;", f"listen 127.0.0.1:{port};")
    temp_paths = "".join(f"    {kind}_temp_path {folder / kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = text.replace("http {\n", "http {\n" + temp_paths, 1)
    path = folder / "nginx.conf"
    path.write_text(text)
    return path


def replicas_behind_nginx(count: int, world: Path, redis_url: str, tracks: int, duration: float) -> dict:
    """`count` Redis-store replicas behind nginx: wrk at 64 connections through the proxy."""
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        tmp = Path(tmp)
        write_config(tmp / "service.yml", world, tmp / "logs", "redis", redis_url, "nginx")
        ports, procs = [free_port() for _ in range(count)], []
        try:
            for i, port in enumerate(ports):
                procs.append(start_service(tmp / "service.yml", port, tmp / f"r{i}.log", f"r{i}")[0])
            proxy_port = free_port()
            conf = nginx_config(tmp, proxy_port, ports)
            procs.append(subprocess.Popen(
                ["nginx", "-p", str(tmp), "-c", str(conf),
                 "-g", f"daemon off; pid {tmp / 'nginx.pid'}; error_log {tmp / 'nginx.log'};"],
                stderr=open(tmp / "nginx.stderr", "w")))
            wait_until_up(proxy_port, procs[-1], tmp / "nginx.stderr")
            wrk(proxy_port, 64, 2, tracks)                          # warm-up, not reported
            started = now_ms()
            load = wrk(proxy_port, 64, duration, tracks)
            phases = {"load": [(started, now_ms())]}
        finally:
            stop(list(reversed(procs)))
        per_replica = [logged_latency_ms(tmp / "logs" / f"r{i}", phases) for i in range(count)]
        events = sum(r["events"] for r in per_replica)
        logged = sum(r["load"] * r["events"] for r in per_replica) / events
        return {"load": load, "logged_ms": logged, "events": [r["events"] for r in per_replica]}


def wrk(port: int, connections: int, duration: float, tracks: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", f"-t{min(WRK_THREADS, connections)}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
         "-s", str(LUA), f"http://127.0.0.1:{port}", "--", str(tracks)],
        capture_output=True, text=True, check=True).stdout
    def latency(label):
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "p50_ms": latency("50%"), "p99_ms": latency("99%"),
            "non_2xx": int(errors.group(1)) if errors else 0}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loaded(proc: subprocess.Popen, port: int, duration: float, tracks: int) -> dict[str, float]:
    """wrk at 64 connections, plus the server's CPU time per answered request (us): unlike
    req/s, it hardly depends on how much of the machine other processes take."""
    before = cpu_seconds(proc.pid)
    run = wrk(port, 64, duration, tracks)
    run["cpu_us"] = 1e6 * (cpu_seconds(proc.pid) - before) / run["requests"]
    return run


def logged_latency_ms(folder: Path, phases: dict[str, list[tuple[int, int]]]) -> dict[str, float]:
    """Mean logged `latency` (ms) of the events answered in each phase's [start, end) ms windows."""
    events = [orjson.loads(line) for file in sorted(folder.glob("events.jsonl*"))
              for line in file.read_bytes().splitlines()]
    means = {}
    for phase, windows in phases.items():
        latencies = [e["latency"] for e in events
                     if any(start <= e["timestamp"] < end for start, end in windows)]
        means[phase] = 1e3 * sum(latencies) / len(latencies)
    means["events"] = len(events)
    return means


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def load_seconds(stderr_path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds the service logged for loading the catalog and tables."""
    wall, cpu = re.search(r"tables in ([\d.]+) s \(CPU ([\d.]+) s", stderr_path.read_text()).groups()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="64-connection runs of every server, alternated (default 3)")
    parser.add_argument("--stores", default="memory,redis")
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="TREE",
                        help="also load the memory-store service of another source tree (e.g. a "
                             "`git worktree` of an older commit) in every round; repeatable")
    parser.add_argument("--redis-url", help="an existing Redis; default: start a private redis-server")
    parser.add_argument("--replicas", type=int, default=2,
                        help="Redis-store replicas behind nginx (0: skip that phase)")
    parser.add_argument("--write-docs", action="store_true",
                        help="replace this benchmark's section of docs/SPEED.md with the 64-connection rounds")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")
    if args.replicas and not shutil.which("nginx"):
        sys.exit("nginx not found: apt-get install -y nginx-light, or pass --replicas 0")

    load_before = f"{os.getloadavg()[0]:.2f}"
    world = OUT / f"world-{args.tracks}x{args.width}"
    print(f"world: {args.tracks} tracks, contextual table {args.tracks} x {args.width} ({world})")
    make_world(world, args.tracks, args.width)
    stores = args.stores.split(",")
    others = [f"memory@{tree.name}" for tree in args.also]
    compared = stores + others  # every server measured against the baseline
    redis_proc, redis_url = None, args.redis_url
    if ("redis" in stores or args.replicas) and not redis_url:
        redis_port = free_port()
        redis_proc = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        time.sleep(0.3)
    procs, ports, ready, rounds = {}, {}, {}, []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
            tmp = Path(tmp)
            # Every server stays up for the whole measurement; wrk loads one at a time.
            ports[BARE] = free_port()
            procs[BARE], ready[BARE] = start_process(
                [sys.executable, str(BARE_APP), "--port", str(ports[BARE])], ports[BARE], tmp / "bare.log")
            for store in stores:
                write_config(tmp / f"{store}.yml", world, tmp / "logs", store, redis_url, store)
                ports[store] = free_port()
                procs[store], ready[store] = start_service(tmp / f"{store}.yml", ports[store], tmp / f"{store}.log")
            for number, tree in enumerate(args.also):
                name = others[number]
                write_config(tmp / f"also{number}.yml", world, tmp / "logs", "memory", None, f"also{number}")
                ports[name] = free_port()
                procs[name], _ = start_service(tmp / f"also{number}.yml", ports[name], tmp / f"also{number}.log",
                                               f"also{number}", tree.resolve())
            try:
                windows = {store: {"load": [], "single": []} for store in stores}
                for target in procs:
                    wrk(ports[target], 64, 2, args.tracks)              # warm-up, not reported
                for number in range(args.rounds):
                    # Alternate the order so that a drift in the machine's load favours no server.
                    order = list(procs) if number % 2 == 0 else list(reversed(procs))
                    rounds.append({})
                    for target in order:
                        started = now_ms()
                        rounds[-1][target] = loaded(procs[target], ports[target], args.duration, args.tracks)
                        if target in windows:
                            windows[target]["load"].append((started, now_ms()))
                    print(f"round {number + 1}: done", flush=True)
                single = {}
                for store in stores:
                    started = now_ms()
                    single[store] = wrk(ports[store], 1, args.duration / 2, args.tracks)
                    windows[store]["single"].append((started, now_ms()))
            finally:
                stop(list(procs.values()))
            results = {store: {"ready_s": ready[store], "load_s": load_seconds(tmp / f"{store}.log"),
                               "single": single[store],
                               "logged": logged_latency_ms(tmp / "logs" / store, windows[store])}
                       for store in stores}
        if args.replicas:
            behind_nginx = replicas_behind_nginx(args.replicas, world, redis_url, args.tracks, args.duration)
            print(f"{args.replicas} replicas behind nginx: done", flush=True)
    finally:
        if redis_proc:
            redis_proc.terminate()
            redis_proc.wait()

    print(f"\nwrk threads: {WRK_THREADS}; load average before/after: {load_before} / {os.getloadavg()[0]:.2f}")
    print(f"\nPOST /next, 64 connections, {args.duration:g} s per run; ratio = req/s / bare req/s "
          f"of the same round; CPU us: the server's CPU time per request")
    print(f"{'round':5} {'bare req/s':>10} {'p50 ms':>6} {'p99 ms':>6} {'CPU us':>6} | " + " | ".join(
        f"{name + ' req/s':>13} {'p50 ms':>6} {'p99 ms':>6} {'CPU us':>6} {'ratio':>5}" for name in compared))
    for number, runs in enumerate(rounds, 1):
        bare = runs[BARE]
        print(f"{number:5d} {bare['rps']:10.0f} {bare['p50_ms']:6.2f} {bare['p99_ms']:6.2f} {bare['cpu_us']:6.1f} | "
              + " | ".join(f"{runs[s]['rps']:13.0f} {runs[s]['p50_ms']:6.2f} {runs[s]['p99_ms']:6.2f} "
                           f"{runs[s]['cpu_us']:6.1f} {runs[s]['rps'] / bare['rps']:5.2f}" for s in compared))
    print("median ratio: " + ", ".join(
        f"{s} {statistics.median(r[s]['rps'] / r[BARE]['rps'] for r in rounds):.2f} "
        f"(CPU per request: {statistics.median(r[s]['cpu_us'] / r[BARE]['cpu_us'] for r in rounds):.2f} x bare)"
        for s in compared))
    print("non-2xx answers at 64 connections: " + ", ".join(
        f"{s} {sum(r[s]['non_2xx'] for r in rounds)}" for s in compared))
    print(f"\n{'store':8} {'start-up s':>10} {'load s':>7} {'CPU s':>5} {'logged ms @64':>13} | "
          f"{'1-conn p50 ms':>13} {'1-conn p99 ms':>13} {'logged ms':>9} {'1-conn non-2xx':>14}")
    for store, r in results.items():
        print(f"{store:8} {r['ready_s']:10.2f} {r['load_s'][0]:7.2f} {r['load_s'][1]:5.2f} "
              f"{r['logged']['load']:13.4f} | {r['single']['p50_ms']:13.3f} {r['single']['p99_ms']:13.3f} "
              f"{r['logged']['single']:9.4f} {r['single']['non_2xx']:14d}")
    if args.replicas:
        r = behind_nginx
        print(f"\nredis store, {args.replicas} replicas behind nginx (conf/nginx/nginx.conf), 64 connections: "
              f"{r['load']['rps']:.0f} req/s, p50 {r['load']['p50_ms']:.2f} ms, p99 {r['load']['p99_ms']:.2f} ms, "
              f"logged mean {r['logged_ms']:.4f} ms, non-2xx {r['load']['non_2xx']}, "
              f"events per replica {r['events']}")
    print("\ntargets: memory store >= 0.6 x bare req/s @64; >= 7000 req/s @64 with p99 <= 15 ms; "
          "1-conn p50 <= 0.5 ms; logged mean <= 0.1 ms; start-up <= 3 s memory / 5 s redis")
    print("start-up: spawn until GET / answers; load: catalog + tables, as the service logs it (wall, CPU). "
          "logged ms: mean `latency` of the events of that phase")
    print("events logged: " + ", ".join(f"{s} {r['logged']['events']}" for s, r in results.items()))
    if args.write_docs:
        write_docs(rounds, compared, args, f"{load_before} / {os.getloadavg()[0]:.2f}")


def write_docs(rounds: list[dict], compared: list[str], args: argparse.Namespace, load: str) -> None:
    """The 64-connection rounds as this benchmark's section of docs/SPEED.md."""
    command = " ".join([".venv/bin/python benchmarks/bench_service.py"] + [a for a in sys.argv[1:] if a != "--write-docs"])
    header = ["round", "bare req/s", "bare CPU us"] + [
        column for name in compared for column in (f"{name} req/s", f"{name} CPU us", f"{name} / bare")]
    rows = [[number, f"{runs[BARE]['rps']:.0f}", f"{runs[BARE]['cpu_us']:.1f}"] + [
        cell for name in compared for cell in (f"{runs[name]['rps']:.0f}", f"{runs[name]['cpu_us']:.1f}",
                                               f"{runs[name]['rps'] / runs[BARE]['rps']:.2f}")]
            for number, runs in enumerate(rounds, 1)]
    summary = "Median over the rounds: " + "; ".join(
        f"{name} {statistics.median(r[name]['rps'] / r[BARE]['rps'] for r in rounds):.2f} x bare req/s, "
        f"{statistics.median(r[name]['cpu_us'] / r[BARE]['cpu_us'] for r in rounds):.2f} x bare CPU per request"
        for name in compared) + (f". Load average before/after: {load} (the ratio moves with the "
                                 f"machine's load: compare runs made at a similar load).")
    speed_doc.write(
        "service", title="The service against a bare uvicorn app",
        measures=f"`POST /next` at 64 connections (wrk, {WRK_THREADS} thread, {args.duration:g} s per run) "
                 f"against `python -m service` (memory store, a Contextual arm over a {args.tracks} x "
                 f"{args.width} table) and against `benchmarks/bare_app.py` (uvicorn, an app that only "
                 f"parses the body), all up at once and loaded in turn, the order alternating between "
                 f"rounds: req/s, the server's CPU time per request (steadier than req/s on a shared "
                 f"machine) and req/s over the bare app's of the same round.",
        command=command, header=header, rows=rows, summary=summary)


if __name__ == "__main__":
    main()
